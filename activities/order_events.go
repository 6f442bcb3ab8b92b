package activities

import (
	"context"
	"fmt"

	"github.com/sagaflow/sagaflow/events"
)

// OrderEvent is the input of PublishOrderEvent.
type OrderEvent struct {
	// Step names the saga step publishing it; with the workflow id it
	// derives the envelope id, so a retried publish is dropped by consumers.
	Step string `json:"step"`
	// Type is events.TypeOrderConfirmed or events.TypeOrderCancelled.
	Type    string `json:"type"`
	OrderID string `json:"order_id"`
	// Reason is required for order.cancelled.
	Reason string `json:"reason,omitempty"`
	// FailedStep names the failed step of order.cancelled, empty for a
	// customer's cancel.
	FailedStep string `json:"failed_step,omitempty"`
	// Details are the order's facts, carried by the event for consumers
	// that never saw order.placed.
	Details *events.OrderDetails `json:"details,omitempty"`
}

// PublishOrderEvent publishes the order saga's outcome event on the event
// exchange with a deterministic id.
func (a *Activities) PublishOrderEvent(ctx context.Context, ev OrderEvent) error {
	var data events.Payload
	switch ev.Type {
	case events.TypeOrderConfirmed:
		data = events.OrderConfirmed{OrderID: ev.OrderID, Details: ev.Details}
	case events.TypeOrderCancelled:
		data = events.OrderCancelled{OrderID: ev.OrderID, Reason: ev.Reason, FailedStep: ev.FailedStep, Details: ev.Details}
	default:
		return nonRetryable(fmt.Errorf("publish order event: unexpected type %q", ev.Type), ErrTypeInvalidEvent)
	}
	return a.publishSagaEvent(ctx, ev.Type, ev.Step, ev.OrderID, data)
}
