package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/store"
)

// The store keeps outbox rows in its own type and knows no broker; this file
// is the edge where they meet: messages are converted on the way into the
// outbox and back on the way out of the relay.

// toOutbox keeps what the outbox stores of m, with the trace context tc of
// the transaction writing it; its headers, reply-to, timestamp and content
// type are dropped (every outbox body is a JSON envelope).
func toOutbox(m amqp.Message, tc map[string]string) store.OutboxMessage {
	return store.OutboxMessage{
		Exchange:      m.Exchange,
		RoutingKey:    m.RoutingKey,
		ID:            m.ID,
		Type:          m.Type,
		CorrelationID: m.CorrelationID,
		Body:          m.Body,
		TraceContext:  tc,
	}
}

// fromOutbox is the message the relay publishes for an outbox row, stamped
// with the time the row was written and carrying the trace context of the
// transaction that wrote it in its headers: the relay publishes without a
// span of its own, so the publish continues that transaction's trace.
func fromOutbox(m store.OutboxMessage) amqp.Message {
	var headers map[string]any
	if len(m.TraceContext) > 0 {
		headers = make(map[string]any, len(m.TraceContext))
		for k, v := range m.TraceContext {
			headers[k] = v
		}
	}
	return amqp.Message{
		Headers:       headers,
		Exchange:      m.Exchange,
		RoutingKey:    m.RoutingKey,
		ID:            m.ID,
		Type:          m.Type,
		CorrelationID: m.CorrelationID,
		Timestamp:     m.CreatedAt,
		ContentType:   events.ContentTypeJSON,
		Body:          m.Body,
	}
}

// amqpPublisher is the part of *amqp.Publisher the relay uses.
type amqpPublisher interface {
	Publish(ctx context.Context, m amqp.Message) error
	PublishBatch(ctx context.Context, ms []amqp.Message) error
}

// relayPublisher adapts an amqp publisher to store.Publisher.
type relayPublisher struct{ pub amqpPublisher }

var _ store.Publisher = relayPublisher{}

// Publish publishes one row; an unroutable message wraps both
// store.ErrUnroutable, which the relay acts on, and the broker's error.
func (r relayPublisher) Publish(ctx context.Context, m store.OutboxMessage) error {
	return relayError(r.pub.Publish(ctx, fromOutbox(m)))
}

// PublishBatch publishes rows in order with pipelined confirms.
func (r relayPublisher) PublishBatch(ctx context.Context, ms []store.OutboxMessage) error {
	out := make([]amqp.Message, len(ms))
	for i, m := range ms {
		out[i] = fromOutbox(m)
	}
	err := r.pub.PublishBatch(ctx, out)
	var be *amqp.BatchError
	if errors.As(err, &be) && len(be.Errs) == len(ms) {
		errs := make([]error, len(be.Errs))
		for i, e := range be.Errs {
			if e != nil {
				errs[i] = relayError(fmt.Errorf("%s: %w", ms[i].ID, e))
			}
		}
		return &store.BatchError{Errs: errs}
	}
	return relayError(err)
}

func relayError(err error) error {
	if errors.Is(err, amqp.ErrUnroutable) {
		return fmt.Errorf("%w: %w", store.ErrUnroutable, err)
	}
	return err
}
