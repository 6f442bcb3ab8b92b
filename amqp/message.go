package amqp

import (
	"context"
	"time"
)

// Message is what the publisher sends and the consumer hands to a handler:
// the AMQP properties the system uses plus the body. It keeps amqp091-go's
// types out of every other package.
type Message struct {
	// Exchange to publish to; "" is the default exchange (direct to a queue).
	Exchange string
	// RoutingKey is the event or command type for "sagas.events", or the
	// queue name on the default exchange.
	RoutingKey string
	// ID is the AMQP message-id: the envelope id, the key of deduplication.
	ID string
	// Type is the AMQP type property: the envelope type.
	Type string
	// CorrelationID is the AMQP correlation-id property.
	CorrelationID string
	// ReplyTo is the queue a reply goes to (request-reply only).
	ReplyTo string
	// Timestamp is the AMQP timestamp property (second precision on the wire).
	Timestamp time.Time
	// ContentType is the AMQP content-type, "application/json" for envelopes.
	ContentType string
	// Headers are the AMQP headers table.
	Headers map[string]any
	// Body is the payload, an encoded envelope.
	Body []byte
}

// Delivery is a message as a consumer received it.
type Delivery struct {
	Message
	// Queue the message was consumed from.
	Queue string
	// Attempt counts deliveries to the handler, starting at 1.
	Attempt int
	// Redelivered is the broker's redelivered flag.
	Redelivered bool
}

// Handler processes one delivery. Returning nil acks it; an error retries it
// with backoff and, after the last attempt, dead-letters it. An error wrapped
// with Permanent dead-letters it at once.
type Handler func(ctx context.Context, d Delivery) error
