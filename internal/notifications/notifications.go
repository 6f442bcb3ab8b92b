// Package notifications is the consumer that tells people what happened: it
// logs every business event on the event exchange as one structured line.
// It stands for the e-mails, webhooks or chat messages a real deployment
// would send, and shows that producers do not know their consumers.
package notifications

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
)

// Bindings are the routing-key patterns of the business events it receives.
var Bindings = []string{"order.*", "inventory.*", "funds.*", "transfer.*"}

// ConsumerConfig returns the consumer configuration of the notifications
// queue; callers may change prefetch and concurrency. It sets no Decoder:
// the Handler decodes each envelope itself and sends what does not decode
// straight to the dead letters, so a delivery is decoded once, not twice.
func ConsumerConfig() amqp.ConsumerConfig {
	return amqp.ConsumerConfig{Name: contract.NotificationsQueue, Bindings: Bindings}
}

// Handler returns the amqp.Handler that logs each event at info level with
// its type, id, subject, correlation id (the saga's workflow id), time and
// payload. An undecodable message is dead-lettered.
func Handler(logger *slog.Logger) amqp.Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		env, _, err := amqp.EnvelopeFromDelivery(d)
		if err != nil {
			return amqp.Permanent(err)
		}
		logger.InfoContext(ctx, "business event",
			"event_type", env.Type,
			"event_id", env.ID,
			"subject", env.Subject,
			"correlation_id", env.CorrelationID,
			"source", env.Source,
			"time", env.Time,
			"data", json.RawMessage(env.Data),
		)
		return nil
	}
}
