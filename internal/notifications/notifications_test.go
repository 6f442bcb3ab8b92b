package notifications_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/notifications"
)

func TestHandlerLogsOneStructuredLinePerEvent(t *testing.T) {
	var buf bytes.Buffer
	h := notifications.Handler(slog.New(slog.NewJSONHandler(&buf, nil)))
	env, err := events.New(events.TypeOrderConfirmed, "test", events.OrderConfirmed{OrderID: "o-1"},
		events.WithCorrelationID("order-o-1"), events.WithSubject("o-1"), events.WithTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	require.NoError(t, err)
	m, err := amqp.MessageFromEnvelope(amqp.DefaultExchange, env)
	require.NoError(t, err)

	require.NoError(t, h(context.Background(), amqp.Delivery{Message: m}))

	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	require.Equal(t, "business event", line["msg"])
	require.Equal(t, events.TypeOrderConfirmed, line["event_type"])
	require.Equal(t, env.ID, line["event_id"])
	require.Equal(t, "order-o-1", line["correlation_id"])
	require.Equal(t, map[string]any{"order_id": "o-1"}, line["data"])
}

func TestHandlerDeadLettersUndecodableMessages(t *testing.T) {
	h := notifications.Handler(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	err := h(context.Background(), amqp.Delivery{Message: amqp.Message{Body: []byte("{not json")}})
	require.Error(t, err)
	require.True(t, amqp.IsPermanent(err))
}
