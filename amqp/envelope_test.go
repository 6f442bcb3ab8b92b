package amqp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

func TestMessageFromEnvelope(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	env, err := events.New(events.TypeOrderConfirmed, "test", events.OrderConfirmed{OrderID: "o-1"},
		events.WithID("e-1"), events.WithCorrelationID("order-o-1"), events.WithTime(at))
	require.NoError(t, err)
	body, err := env.Encode()
	require.NoError(t, err)

	tests := []struct {
		name, exchange string
	}{
		{"the default event exchange", DefaultExchange},
		{"a configured event exchange", "tenant-a.events"},
		{"the default exchange, for a message sent straight to a queue", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := MessageFromEnvelope(tt.exchange, env)
			require.NoError(t, err)
			require.Equal(t, Message{
				Exchange:      tt.exchange,
				RoutingKey:    events.TypeOrderConfirmed,
				ID:            "e-1",
				Type:          events.TypeOrderConfirmed,
				CorrelationID: "order-o-1",
				Timestamp:     at,
				ContentType:   events.ContentTypeJSON,
				Body:          body,
			}, m)
		})
	}

	_, err = MessageFromEnvelope(DefaultExchange, events.Envelope{ID: "broken"})
	require.ErrorContains(t, err, "encode envelope broken")
}
