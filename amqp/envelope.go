package amqp

import (
	"fmt"

	"github.com/sagaflow/sagaflow/events"
)

// MessageFromEnvelope builds the message for an envelope on exchange, the
// event exchange of the connection it is published on (Config.Exchange):
// routing key = type, and the AMQP properties carry the envelope's id, type,
// correlation id, time and content type so that brokers and tools can route
// and trace without decoding the body. A message sent straight to a queue
// passes "" (the default exchange) and sets RoutingKey to the queue.
func MessageFromEnvelope(exchange string, env events.Envelope) (Message, error) {
	body, err := env.Encode()
	if err != nil {
		return Message{}, fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	ct := env.DataContentType
	if ct == "" {
		ct = events.ContentTypeJSON
	}
	return Message{
		Exchange:      exchange,
		RoutingKey:    env.Type,
		ID:            env.ID,
		Type:          env.Type,
		CorrelationID: env.CorrelationID,
		Timestamp:     env.Time,
		ContentType:   ct,
		Body:          body,
	}, nil
}

// EnvelopeFromDelivery decodes the envelope in d's body, returning its
// payload as a value of its registered type. Errors wrap the events
// package's *DecodeError.
func EnvelopeFromDelivery(d Delivery) (events.Envelope, events.Payload, error) {
	env, p, err := events.Decode(d.Body)
	if err != nil {
		return events.Envelope{}, nil, fmt.Errorf("decode delivery %s from %s: %w", d.ID, d.Queue, err)
	}
	return env, p, nil
}

// DecodeEnvelope is a ConsumerConfig.Decoder that accepts only deliveries
// whose body is a valid envelope; the others go to the dead letters at once.
func DecodeEnvelope(d Delivery) error {
	_, _, err := EnvelopeFromDelivery(d)
	return err
}
