package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// A consumer handles each delivery through a chain of layers, each a Handler
// wrapping the next, outermost first:
//
//	deadLetter → retry → decode → dedup → countHandled → recoverPanic → handler
//
// The inner layers turn what can go wrong into errors: a body the decoder
// rejects, a message id already handled or still in flight, a panic. The
// outer two move a failed delivery where it belongs, a delay queue or the
// dead letters, and return nil once it is there; only a delivery they could
// not move comes back as an error (errNotMoved), and the consumer then
// returns it to the broker. The panic is recovered inside dedup so that the
// claim on the message id is released and a retry can claim it again.
type layer func(next Handler) Handler

// chain wraps h in layers, the first one outermost.
func chain(h Handler, layers ...layer) Handler {
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i](h)
	}
	return h
}

// publisher sends one message with a confirm; *Publisher implements it.
type publisher interface {
	Publish(ctx context.Context, m Message) error
}

// errNotMoved marks a delivery that should have gone to a delay queue or the
// dead letters but could not be published there: the consumer requeues it
// for the broker to deliver again, rather than lose it.
var errNotMoved = errors.New("not moved")

// errClaimBusy is the dedup layer's answer while another delivery of the
// same message id is being handled: its outcome decides whether this copy is
// a duplicate, so the retry layer sends it round a delay queue without
// counting an attempt.
var errClaimBusy = errors.New("another delivery of the message id is being handled")

// undecodableError is a decoder's rejection. It is never retried: the body
// will not decode any better next time.
type undecodableError struct{ err error }

func (e *undecodableError) Error() string { return "decode: " + e.err.Error() }

func (e *undecodableError) Unwrap() error { return e.err }

// giveUp reports whether a failed delivery goes to the dead letters at once.
func giveUp(err error) bool {
	var u *undecodableError
	return IsPermanent(err) || errors.As(err, &u)
}

// deliveryAttrs are the log attributes naming a delivery.
func deliveryAttrs(d Delivery) []any {
	return []any{"message_id", d.ID, "routing_key", d.RoutingKey, "attempt", d.Attempt}
}

// callRecovered runs f, turning a panic into an error so that a poison
// message cannot crash the process.
func callRecovered(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

// recoverPanic turns a panicking handler into a failed one.
func recoverPanic(next Handler) Handler {
	return func(ctx context.Context, d Delivery) error {
		return callRecovered(func() error { return next(ctx, d) })
	}
}

// decode runs decoder before the next layer; a delivery it rejects (or
// panics on) fails with an undecodableError and never reaches the handler.
// A nil decoder lets every delivery through.
func decode(decoder func(Delivery) error) layer {
	return func(next Handler) Handler {
		if decoder == nil {
			return next
		}
		return func(ctx context.Context, d Delivery) error {
			if err := callRecovered(func() error { return decoder(d) }); err != nil {
				return &undecodableError{err: err}
			}
			return next(ctx, d)
		}
	}
}

// dedup runs the next layer at most once per message id within window:
// a handled id is acked without running it again (counted in
// Stats.DuplicatesDropped), an id in flight elsewhere fails with
// errClaimBusy, and a failure releases the claim for the retry. Deliveries
// without a message id are not deduplicated.
func dedup(store DedupStore, window time.Duration, stats *Stats, logger *slog.Logger) layer {
	return func(next Handler) Handler {
		return func(ctx context.Context, d Delivery) error {
			if d.ID == "" {
				return next(ctx, d)
			}
			res, err := store.Claim(ctx, d.ID)
			if err != nil {
				return fmt.Errorf("dedup claim: %w", err)
			}
			switch res {
			case ClaimDuplicate:
				stats.DuplicatesDropped.Add(1)
				spanEvent(ctx, EventDuplicateDropped)
				return nil
			case ClaimBusy:
				spanEvent(ctx, EventDeferred)
				return errClaimBusy
			}
			if err := next(ctx, d); err != nil {
				if rerr := store.Release(ctx, d.ID); rerr != nil {
					// The claim stays held: a retry of the id is deferred
					// until the store forgets it.
					logger.Warn("release dedup claim after a failed handling", append(deliveryAttrs(d), "error", rerr)...)
				}
				return err
			}
			if cerr := store.Complete(ctx, d.ID, window); cerr != nil {
				// The effect happened, so the delivery is still acked; a
				// redelivery would only be deduplicated less well.
				logger.Warn("record handled message id", append(deliveryAttrs(d), "error", cerr)...)
			}
			return nil
		}
	}
}

// countHandled counts the deliveries the next layer handled successfully in
// Stats.Handled.
func countHandled(stats *Stats) layer {
	return func(next Handler) Handler {
		return func(ctx context.Context, d Delivery) error {
			err := next(ctx, d)
			if err == nil {
				stats.Handled.Add(1)
			}
			return err
		}
	}
}

// retry sends a failed delivery to the delay queue for its attempt, with the
// attempts and the error recorded in its headers, while attempts remain and
// the error is not one to give up on; those it passes on to the dead-letter
// layer. A delivery deferred by dedup goes to the first delay queue with its
// attempt not counted. A delivery whose handler found a dependency
// unavailable (UnavailableError) is retried past maxAttempts, in the last
// delay queue, until the dependency is back.
func retry(maxAttempts int, retryQueue func(attempt int) string, pub publisher, stats *Stats, logger *slog.Logger) layer {
	return func(next Handler) Handler {
		return func(ctx context.Context, d Delivery) error {
			err := next(ctx, d)
			if err == nil {
				return nil
			}
			attempts, cause, counter := d.Attempt, err, &stats.Retried
			delay := attempts
			switch {
			case errors.Is(err, errClaimBusy):
				attempts, cause, counter = d.Attempt-1, nil, &stats.Deferred
				delay = attempts
			case IsUnavailable(err):
				// However long the dependency is down: past the last
				// attempt the delivery keeps waiting in the longest delay
				// queue.
				stats.RetriedUnavailable.Add(1)
				delay = min(attempts, max(maxAttempts-1, 1))
			case giveUp(err) || d.Attempt >= maxAttempts:
				return err
			}
			m := republished(d, attempts, cause)
			m.Exchange, m.RoutingKey = "", retryQueue(max(delay, 1))
			if perr := pub.Publish(ctx, m); perr != nil {
				logger.Error("send to delay queue failed; returning the delivery to the broker",
					append(deliveryAttrs(d), "delay_queue", m.RoutingKey, "cause", err, "error", perr)...)
				return fmt.Errorf("%w: to %s: %w", errNotMoved, m.RoutingKey, perr)
			}
			counter.Add(1)
			spanEvent(ctx, EventRetry, append(attemptAttrs(d, cause), attribute.String("messaging.rabbitmq.delay_queue", m.RoutingKey))...)
			if cause != nil {
				logger.Info("handling failed; retrying", append(deliveryAttrs(d), "delay_queue", m.RoutingKey, "error", err)...)
			}
			return nil
		}
	}
}

// deadLetter publishes a delivery whose handling failed for good to the
// dead-letter exchange under the consumer's name, with the attempts and the
// error recorded in its headers, and counts it in Stats.DeadLettered and
// Stats.DeadLettersByConsumer.
func deadLetter(exchange, consumer string, pub publisher, stats *Stats, logger *slog.Logger) layer {
	stats.deadLetters(consumer) // the consumer's series exists from its start
	return func(next Handler) Handler {
		return func(ctx context.Context, d Delivery) error {
			err := next(ctx, d)
			if err == nil || errors.Is(err, errNotMoved) {
				return err
			}
			m := republished(d, d.Attempt, err)
			m.Exchange, m.RoutingKey = exchange, consumer
			if perr := pub.Publish(ctx, m); perr != nil {
				logger.Error("dead-lettering failed; returning the delivery to the broker",
					append(deliveryAttrs(d), "cause", err, "error", perr)...)
				return fmt.Errorf("%w: to the dead letters: %w", errNotMoved, perr)
			}
			stats.CountDeadLetter(consumer)
			spanEvent(ctx, EventDeadLettered, attemptAttrs(d, err)...)
			logger.Warn("dead-lettered", append(deliveryAttrs(d), "error", err)...)
			return nil
		}
	}
}

// republished is the copy of d sent to a delay queue or the dead letters:
// same properties and body, the broker's own dead-letter and delivery-count
// bookkeeping removed, ours added. The caller sets its exchange and routing key.
func republished(d Delivery, attempts int, cause error) Message {
	h := make(map[string]any, len(d.Headers)+4)
	for k, v := range d.Headers {
		if k == "x-death" || k == "x-delivery-count" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			continue
		}
		h[k] = v
	}
	h[HeaderAttempts] = int64(attempts)
	h[HeaderOriginalRoutingKey] = d.RoutingKey
	h[HeaderOriginalExchange] = d.Exchange
	if cause != nil {
		msg := cause.Error()
		if len(msg) > 4096 {
			msg = msg[:4096]
		}
		h[HeaderLastError] = msg
	}
	return Message{
		ID:            d.ID,
		Type:          d.Type,
		CorrelationID: d.CorrelationID,
		ReplyTo:       d.ReplyTo,
		Timestamp:     d.Timestamp,
		ContentType:   d.ContentType,
		Headers:       h,
		Body:          d.Body,
	}
}
