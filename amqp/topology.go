package amqp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// queueRole is what a durable queue is for in a consumer's topology; it
// decides the arguments of its type.
type queueRole int

const (
	// roleConsumer is the queue a consumer reads.
	roleConsumer queueRole = iota
	// roleDelay is a retry queue: messages wait out a TTL there, then the
	// broker dead-letters them back to the consumer's queue.
	roleDelay
	// roleDeadLetter is the consumer's dead-letter queue.
	roleDeadLetter
)

// queueArgs returns the declaration arguments of a durable queue of role:
// base (its dead-letter and TTL arguments) with the configured queue type.
//
// Quorum queues (RabbitMQ 3.10 or later, which added message TTL to them)
// get, on the consumer's queue, x-delivery-limit: a message returned
// unacked more often than that, because its consumer crashes or loses its
// connection while handling it, is dead-lettered instead of delivered in a
// loop. The dead-letter queue has no limit because browsing it
// (ListDeadLetters) returns every message it reads, which counts as a
// delivery; delay queues have no consumer. Every quorum queue that
// dead-letters (the consumer's queue to the dead letters, a delay queue back
// to the consumer's queue) does so at-least-once: the broker keeps the
// message until the target queue confirmed it, where at-most-once, the
// default, drops it when the target is unavailable (a node down). That
// strategy requires x-overflow reject-publish, which only matters with a
// length limit, and none is set.
//
// Classic queues keep exactly the arguments they had before queue types were
// configurable (plus the explicit type, which the broker treats as
// equivalent), so existing classic queues are declared again unchanged.
func (c Config) queueArgs(role queueRole, base amqp091.Table) amqp091.Table {
	args := amqp091.Table{"x-queue-type": c.QueueType}
	for k, v := range base {
		args[k] = v
	}
	if c.QueueType != QueueQuorum {
		return args
	}
	if role == roleConsumer {
		args["x-delivery-limit"] = int64(c.DeliveryLimit)
	}
	if _, ok := base["x-dead-letter-exchange"]; ok {
		args["x-dead-letter-strategy"] = "at-least-once"
		args["x-overflow"] = "reject-publish"
	}
	return args
}

// describeArgs is how a declaration is named in errors: the queue type and
// the arguments a user configures, e.g. "quorum, x-delivery-limit=20".
func describeArgs(args amqp091.Table) string {
	s := fmt.Sprint(args["x-queue-type"])
	for _, k := range []string{"x-delivery-limit", "x-message-ttl"} {
		if v, ok := args[k]; ok {
			s += fmt.Sprintf(", %s=%v", k, v)
		}
	}
	return s
}

// QueueMismatchError is a queue declaration the broker refused because the
// queue exists with another type or other arguments (406
// PRECONDITION_FAILED). Nothing was changed: the queue and its messages are
// as they were. The consumer that declared it stops, since declaring again
// cannot succeed.
type QueueMismatchError struct {
	// Queue is the queue's name.
	Queue string
	// ExistingType is the type of the existing queue, "classic" or
	// "quorum" (or another the broker named).
	ExistingType string
	// Arg is the argument that differs, e.g. "x-queue-type" or
	// "x-delivery-limit"; empty when the broker's answer did not name one.
	Arg string
	// Existing is Arg's value on the existing queue, "" when it has none.
	Existing string
	// WantedType is the type the declaration asked for, and Wanted
	// describes the declaration, e.g. "quorum, x-delivery-limit=20".
	WantedType, Wanted string
	// Messages and Consumers are the existing queue's counts, when
	// Inspected.
	Messages, Consumers int
	// Inspected reports whether the queue could be inspected after the
	// refusal.
	Inspected bool
	// Err is the broker's refusal.
	Err error
}

// Error says in one line which queue, what it is, what was asked and how to
// fix it.
func (e *QueueMismatchError) Error() string {
	what := "a " + e.ExistingType + " queue"
	if e.Arg != "" && e.Arg != "x-queue-type" {
		existing := e.Existing
		if existing == "" {
			existing = "none"
		}
		what += fmt.Sprintf(" with %s %s", e.Arg, existing)
	}
	if e.Inspected {
		what += fmt.Sprintf(" holding %d messages with %d consumers", e.Messages, e.Consumers)
	}
	var fix string
	switch e.Arg {
	case "x-queue-type":
		fix = "drain it and delete it so that it is declared again as " + e.WantedType
		if e.ExistingType == QueueClassic || e.ExistingType == QueueQuorum {
			fix += fmt.Sprintf(", or set %s=%s to keep %s queues", EnvQueueType, e.ExistingType, e.ExistingType)
		}
	case "x-delivery-limit":
		fix = "drain it and delete it so that it is declared again"
		if e.Existing != "" {
			fix += fmt.Sprintf(", or set %s=%s", EnvDeliveryLimit, e.Existing)
		}
	default:
		fix = "drain it and delete it so that it is declared again"
	}
	return fmt.Sprintf("queue %s exists as %s, but is declared as %s and the broker refused that (%s); nothing was changed: %s",
		e.Queue, what, e.Wanted, brokerReason(e.Err), fix)
}

// Unwrap returns the broker's refusal.
func (e *QueueMismatchError) Unwrap() error { return e.Err }

// brokerReason is the text of a broker error without the amqp091 prefix.
func brokerReason(err error) string {
	var aerr *amqp091.Error
	if errors.As(err, &aerr) {
		return fmt.Sprintf("%d %s", aerr.Code, aerr.Reason)
	}
	return err.Error()
}

// inequivalentArg parses the broker's reason for refusing a declaration,
// e.g. "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q'
// in vhost '/': received the value 'quorum' of type 'longstr' but current
// is none".
var inequivalentArg = regexp.MustCompile(`inequivalent arg '([^']+)' for queue '[^']*' in vhost '[^']*': received (none|the value '[^']*'|'[^']*').* but current is (none|the value '([^']*)'|'([^']*)')`)

// parseMismatch reads the differing argument and its existing value from a
// broker's 406 reason; ok is false for another kind of refusal.
func parseMismatch(reason string) (arg, existing string, ok bool) {
	m := inequivalentArg.FindStringSubmatch(reason)
	if m == nil {
		return "", "", false
	}
	return m[1], m[4] + m[5], true
}

// queueRefused turns the broker's refusal of declaring queue with args into
// an error naming the queue and the way out. A 406 means the queue exists
// differently: the answer is a *QueueMismatchError, filled in by inspecting
// the queue on fresh channels (the refused one is closed by the broker).
// The broker names only the first argument it found different, which need
// not be the type, so the type is probed by declaring alt, the same queue
// of the other type: that succeeds, changing nothing, only when the queue is
// exactly that, and otherwise the broker may name the type it has. Other
// errors are wrapped with the queue's name.
func (c *Conn) queueRefused(ctx context.Context, queue string, args, alt amqp091.Table, err error) error {
	var aerr *amqp091.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp091.PreconditionFailed {
		return fmt.Errorf("declare queue %s: %w", queue, err)
	}
	arg, existing, ok := parseMismatch(aerr.Reason)
	if !ok {
		return fmt.Errorf("declare queue %s as %s: the broker refused it: %w", queue, describeArgs(args), err)
	}
	e := &QueueMismatchError{Queue: queue, Arg: arg, Existing: existing, Wanted: describeArgs(args), Err: err}
	e.WantedType = fmt.Sprint(args["x-queue-type"])
	e.ExistingType = e.WantedType
	if arg == "x-queue-type" {
		e.ExistingType = typeOrClassic(existing)
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	withChannel := func(f func(ch *amqp091.Channel)) {
		if ch, cerr := c.channel(ictx); cerr == nil {
			f(ch)
			_ = ch.Close()
		}
	}
	withChannel(func(ch *amqp091.Channel) {
		_, perr := ch.QueueDeclare(queue, true, false, false, false, alt)
		var paerr *amqp091.Error
		switch {
		case perr == nil:
			e.Arg, e.ExistingType = "x-queue-type", fmt.Sprint(alt["x-queue-type"])
			e.Existing = e.ExistingType
		case errors.As(perr, &paerr):
			if parg, pexisting, ok := parseMismatch(paerr.Reason); ok && parg == "x-queue-type" {
				e.Arg, e.Existing, e.ExistingType = parg, pexisting, typeOrClassic(pexisting)
			}
		}
	})
	withChannel(func(ch *amqp091.Channel) {
		if q, qerr := ch.QueueDeclarePassive(queue, true, false, false, false, nil); qerr == nil {
			e.Messages, e.Consumers, e.Inspected = q.Messages, q.Consumers, true
		}
	})
	return e
}

// typeOrClassic is the type of a queue whose x-queue-type is t: classic
// when it has none.
func typeOrClassic(t string) string {
	if t == "" {
		return QueueClassic
	}
	return t
}
