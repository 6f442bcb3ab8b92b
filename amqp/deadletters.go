package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// HeaderRedrives counts how often a message was sent back from the dead
// letters to its consumer, so a message that keeps failing after redrives is
// recognisable.
const HeaderRedrives = "x-redrives"

// DefaultDeadLetterLimit is the number of dead letters ListDeadLetters
// returns when its limit is zero.
const DefaultDeadLetterLimit = 100

// DeadLetter is a message in a consumer's dead-letter queue, with the reasons
// the consumer recorded in its headers when it gave up on it.
type DeadLetter struct {
	// Message holds the properties and the body as they are in the queue.
	Message
	// Consumer is the queue of the consumer that gave up on the message.
	Consumer string
	// Queue is the dead-letter queue ("<Consumer>.dlq").
	Queue string
	// Position is the message's place in the dead-letter queue, from 1.
	Position int
	// LastError is the consumer's last handler or decoder error
	// (HeaderLastError) or, for a message the broker dead-lettered, a
	// sentence with BrokerReason.
	LastError string
	// BrokerReason is the x-death reason of a message the broker
	// dead-lettered rather than the consumer: "delivery_limit" when it was
	// returned unacked more often than the queue's x-delivery-limit
	// (Config.DeliveryLimit), also "rejected", "expired" or "maxlen". It is
	// empty for the consumer's own dead letters.
	BrokerReason string
	// Attempts is the number of handler attempts made (HeaderAttempts).
	Attempts int
	// OriginalExchange is the exchange the message was first published to
	// (HeaderOriginalExchange); "" is the default exchange.
	OriginalExchange string
	// OriginalRoutingKey is the routing key it was first published with
	// (HeaderOriginalRoutingKey).
	OriginalRoutingKey string
	// Redrives counts earlier redrives of the message (HeaderRedrives).
	Redrives int
}

// RedriveResult says what Redrive did.
type RedriveResult struct {
	// Redriven are the ids of the messages sent back to the consumer, in
	// queue order.
	Redriven []string
	// NotFound are the requested ids that were not in the dead-letter queue.
	NotFound []string
}

// deadLetterQueues returns the consumer queue and its dead-letter queue for
// name, which may be either of them.
func deadLetterQueues(name string) (consumer, dlq string, err error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", "", errors.New("queue name is required")
	}
	if c, ok := strings.CutSuffix(name, ".dlq"); ok && c != "" {
		return c, name, nil
	}
	return name, name + ".dlq", nil
}

// ListDeadLetters returns up to limit messages (DefaultDeadLetterLimit when
// limit is 0) from the dead-letter queue of the consumer named queue (its
// name or "<name>.dlq"), oldest first. It is a browse: messages are taken
// with basic.get without acknowledging them and all returned to the queue
// at the end, in their order, so nothing is lost or reordered (a quorum
// queue is read to its end for that, see browse). It fails when the queue
// does not exist.
func (c *Conn) ListDeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	consumer, dlq, err := deadLetterQueues(queue)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	if limit < 0 {
		return nil, fmt.Errorf("list dead letters of %s: limit %d is negative", consumer, limit)
	}
	if limit == 0 {
		limit = DefaultDeadLetterLimit
	}
	var out []DeadLetter
	err = c.browse(ctx, dlq, func(_ *amqp091.Channel, d amqp091.Delivery, pos int) (bool, error) {
		out = append(out, toDeadLetter(d, consumer, dlq, pos))
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", consumer, err)
	}
	return out, nil
}

// Redrive sends the dead letters with the given message ids back to the
// consumer they came from and removes them from the dead-letter queue; with
// no ids it fails rather than guess. Use RedriveAll for every message.
//
// Each message goes straight to the consumer's queue on the default exchange
// (not back through the event exchange, which would deliver it again to
// every other subscriber of its routing key), keeping its original exchange
// and routing key in the headers the consumer reads them from, with its
// attempts reset and HeaderRedrives counted up. It is published with a
// confirm and only then acknowledged in the dead-letter queue, so a failure
// in between leaves it in both queues (the consumer deduplicates it by id)
// but never in neither. The other messages keep their places.
func (c *Conn) Redrive(ctx context.Context, queue string, ids []string) (RedriveResult, error) {
	if len(ids) == 0 {
		return RedriveResult{}, fmt.Errorf("redrive %s: no message ids given", queue)
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	res, err := c.redrive(ctx, queue, func(id string) bool { return want[id] }, nil)
	if err != nil {
		return res, err
	}
	found := make(map[string]bool, len(res.Redriven))
	for _, id := range res.Redriven {
		found[id] = true
	}
	for _, id := range ids {
		if !found[id] {
			res.NotFound = append(res.NotFound, id)
			found[id] = true
		}
	}
	return res, nil
}

// RedriveAll sends every message of the consumer's dead-letter queue back to
// the consumer, as Redrive does. Messages dead-lettered while it runs stay
// for the next call.
func (c *Conn) RedriveAll(ctx context.Context, queue string) (RedriveResult, error) {
	return c.redrive(ctx, queue, func(string) bool { return true }, nil)
}

// redrive sends the selected dead letters back; decorate, when set, edits
// each message before it is published.
func (c *Conn) redrive(ctx context.Context, queue string, selected func(id string) bool, decorate func(m *Message, d amqp091.Delivery)) (RedriveResult, error) {
	var res RedriveResult
	consumer, dlq, err := deadLetterQueues(queue)
	if err != nil {
		return res, fmt.Errorf("redrive: %w", err)
	}
	pub, err := c.NewPublisher(PublisherConfig{})
	if err != nil {
		return res, fmt.Errorf("redrive %s: %w", consumer, err)
	}
	defer func() { _ = pub.Close() }()
	sent := map[string]bool{}
	err = c.browse(ctx, dlq, func(ch *amqp091.Channel, d amqp091.Delivery, _ int) (bool, error) {
		// A message sent back that failed again during this call is back
		// in the queue: it stays for the next call, not sent round again.
		if !selected(d.MessageId) || sent[d.MessageId] {
			return true, nil // stays unacked: returned to its place at the end
		}
		m := redriveMessage(d, consumer)
		if decorate != nil {
			decorate(&m, d)
		}
		if err := pub.Publish(ctx, m); err != nil {
			return false, fmt.Errorf("send %s back to %s: %w", d.MessageId, consumer, err)
		}
		if err := d.Ack(false); err != nil {
			return false, fmt.Errorf("remove %s from %s after sending it back: %w", d.MessageId, dlq, err)
		}
		sent[d.MessageId] = true
		res.Redriven = append(res.Redriven, d.MessageId)
		return true, nil
	})
	if err != nil {
		return res, fmt.Errorf("redrive %s: %w", consumer, err)
	}
	return res, nil
}

// browse gets the messages that were in queue when it started, one by one
// without acknowledgement, and hands each to visit until visit returns
// false. Every message visit did not acknowledge is returned to the queue
// (nack with requeue) when browse ends, in its original order; messages
// dead-lettered while it runs may end up ahead of them in a quorum queue.
func (c *Conn) browse(ctx context.Context, queue string, visit func(*amqp091.Channel, amqp091.Delivery, int) (bool, error)) error {
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > time.Minute {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	ch, err := c.channel(ctx)
	if err != nil {
		return err
	}
	// Closing the channel requeues whatever is still unacked, also when a
	// visit failed halfway.
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		var aerr *amqp091.Error
		if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
			return fmt.Errorf("queue %s does not exist (is the consumer name right?)", queue)
		}
		return fmt.Errorf("inspect queue %s: %w", queue, err)
	}
	// A classic queue: only the messages present at the start, so that a
	// message requeued by a concurrent reader or dead-lettered meanwhile
	// cannot make the loop run forever, and it puts returned messages back
	// in their places, so the browse can stop once visit has seen enough.
	//
	// A quorum queue (RabbitMQ 3.10) puts returned messages at its back:
	// stopping halfway would move the first ones behind the rest, so the
	// browse takes every message and returns them all, in order. Its
	// message count lags (the returns of a browse that just ended may not
	// be in it), so the browse reads until the queue has no more ready: a
	// message it holds unacknowledged is not delivered to it again, and
	// twice the count at the start, plus some, bounds what arrives
	// meanwhile. Quorum deliveries are the ones with an
	// x-delivery-count header (the consumer removes it from what it
	// republishes).
	var lastTag uint64
	visiting, quorum := true, false
	for pos := 1; pos <= max(q.Messages, 1) || (quorum && pos <= 2*q.Messages+100); pos++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return fmt.Errorf("get from %s: %w", queue, err)
		}
		if !ok {
			break
		}
		lastTag = d.DeliveryTag
		if pos == 1 {
			_, quorum = d.Headers["x-delivery-count"]
		}
		if visiting {
			if visiting, err = visit(ch, d, pos); err != nil {
				return err
			}
		}
		if !visiting && !quorum {
			break
		}
	}
	if lastTag > 0 {
		// multiple=true returns every unacked message up to lastTag;
		// acknowledged ones are not affected.
		if err := ch.Nack(lastTag, true, true); err != nil {
			return fmt.Errorf("return browsed messages to %s: %w", queue, err)
		}
	}
	return nil
}

func toDeadLetter(d amqp091.Delivery, consumer, dlq string, pos int) DeadLetter {
	dl := DeadLetter{
		Message:  messageOf(d),
		Consumer: consumer,
		Queue:    dlq,
		Position: pos,
		Attempts: int(headerInt(d.Headers, HeaderAttempts)),
		Redrives: int(headerInt(d.Headers, HeaderRedrives)),
	}
	dl.LastError, _ = d.Headers[HeaderLastError].(string)
	dl.OriginalExchange, _ = d.Headers[HeaderOriginalExchange].(string)
	dl.OriginalRoutingKey, _ = d.Headers[HeaderOriginalRoutingKey].(string)
	brokerDeadLetter(&dl, d.Headers)
	return dl
}

// brokerDeadLetter fills in the reason and origin of a message the broker
// dead-lettered, from its most recent x-death entry. The consumer's own dead
// letters carry none (it removes them when it republishes), so an x-death
// here is the broker's; an x-last-error beside it is from an earlier retry.
func brokerDeadLetter(dl *DeadLetter, h amqp091.Table) {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return
	}
	death, _ := deaths[0].(amqp091.Table)
	reason, _ := death["reason"].(string)
	if reason == "" {
		return
	}
	queue, _ := death["queue"].(string)
	dl.BrokerReason = reason
	earlier := dl.LastError
	dl.LastError = fmt.Sprintf("dead-lettered by the broker from %s: %s", queue, reason)
	if reason == "delivery_limit" {
		dl.LastError += " (returned unacked more often than the queue's x-delivery-limit: its consumer crashed or lost its connection while handling it each time)"
	}
	if earlier != "" {
		dl.LastError += "; earlier handler error: " + earlier
	}
	if _, ok := h[HeaderOriginalRoutingKey]; !ok {
		dl.OriginalExchange, _ = death["exchange"].(string)
		if keys, _ := death["routing-keys"].([]any); len(keys) > 0 {
			dl.OriginalRoutingKey, _ = keys[0].(string)
		}
	}
}

// redriveMessage is the message that sends d back to consumer's queue.
func redriveMessage(d amqp091.Delivery, consumer string) Message {
	h := make(map[string]any, len(d.Headers)+1)
	for k, v := range d.Headers {
		switch {
		case k == HeaderAttempts, k == HeaderLastError, k == "x-death", k == "x-delivery-count",
			strings.HasPrefix(k, "x-first-death-"), strings.HasPrefix(k, "x-last-death-"):
			// A fresh set of attempts; the last error stays in the logs.
		default:
			h[k] = v
		}
	}
	h[HeaderRedrives] = headerInt(d.Headers, HeaderRedrives) + 1
	return Message{
		Exchange:      "",
		RoutingKey:    consumer,
		ID:            d.MessageId,
		Type:          d.Type,
		CorrelationID: d.CorrelationId,
		ReplyTo:       d.ReplyTo,
		Timestamp:     d.Timestamp,
		ContentType:   d.ContentType,
		Headers:       h,
		Body:          d.Body,
	}
}
