package bridge

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/events"
)

// OrderWorkflowType is the registered name of the order saga. The bridge
// names workflows by type name rather than by function so that it does not
// depend on the workflow code.
const OrderWorkflowType = "OrderWorkflow"

// SignalCancel is the name of the signal that asks an order saga to cancel;
// its payload is a CancelRequest.
const SignalCancel = "cancel"

// CancelRequest is the payload of the SignalCancel signal, built from an
// order.cancel_requested event. The order workflow decodes the signal into
// its own type with the same JSON names.
type CancelRequest struct {
	// Reason is the customer's reason, carried into order.cancelled.
	Reason string `json:"reason"`
	// EventID is the id of the order.cancel_requested envelope, so the
	// workflow history links the signal to the event that caused it.
	EventID string `json:"event_id,omitempty"`
	// CorrelationID is the correlation id of that envelope.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// OrderWorkflowID is the workflow id of the saga of an order: one per order id.
func OrderWorkflowID(orderID string) string { return "order-" + orderID }

// Memo keys the bridge writes on every workflow it starts, linking the
// workflow to the event that started it for the audit trail.
const (
	// MemoEventID is the id of the starting envelope.
	MemoEventID = "event_id"
	// MemoEventType is its type.
	MemoEventType = "event_type"
	// MemoEventSource is its source.
	MemoEventSource = "event_source"
	// MemoCorrelationID is its correlation id, when it has one.
	MemoCorrelationID = "correlation_id"
	// MemoCausationID is its causation id, when it has one.
	MemoCausationID = "causation_id"
)

// Route maps one event type to what the bridge does with it: start a
// workflow or signal a running one. Exactly one of Start and Signal is set.
type Route struct {
	// EventType is the catalog type the route handles; it is also the
	// routing key the bridge's queue is bound with.
	EventType string
	// Start, when set, starts a workflow for each event.
	Start *StartRoute
	// Signal, when set, signals a running workflow for each event.
	Signal *SignalRoute
}

// StartRoute starts one workflow per business id. A second event for the
// same id never starts a second workflow, whether the first still runs or
// has ended.
type StartRoute struct {
	// Workflow is the workflow function or its registered type name.
	// Required.
	Workflow any
	// WorkflowID derives the workflow id from the payload. Required.
	WorkflowID func(events.Payload) string
	// Input builds the workflow's single argument. Default: the payload.
	Input func(events.Envelope, events.Payload) any
	// TaskQueue overrides Config.TaskQueue for this workflow.
	TaskQueue string
	// Memo adds entries to the memo beside the event's ids (see the Memo
	// constants). Optional.
	Memo func(events.Envelope, events.Payload) map[string]any
	// SearchAttributes sets the workflow's search attributes at start; the
	// server must have them registered. Optional.
	SearchAttributes func(events.Payload) temporal.SearchAttributes
}

// SignalRoute signals the running workflow an event is about.
type SignalRoute struct {
	// WorkflowID derives the workflow id from the payload. Required.
	WorkflowID func(events.Payload) string
	// Signal is the signal name. Required.
	Signal string
	// Arg builds the signal's payload. Default: the event's payload.
	Arg func(events.Envelope, events.Payload) any
	// Subject names what the workflow is about in the dead-letter reason
	// when it is not running, such as "order 42". Default "workflow <id>".
	Subject func(events.Payload) string
}

// MemoOrderTotal is the memo key of an order saga's total (an events.Money),
// the same key the order workflow's own start options use.
const MemoOrderTotal = "total"

// Search attributes an order saga is started with, the same the order
// workflow's own start options set; the server must have them registered
// as Keyword.
var (
	// OrderIDKey is the OrderId search attribute.
	OrderIDKey = temporal.NewSearchAttributeKeyKeyword("OrderId")
	// CustomerIDKey is the CustomerId search attribute.
	CustomerIDKey = temporal.NewSearchAttributeKeyKeyword("CustomerId")
)

// DefaultRoutes are the routes of the system's sagas: order.placed starts
// OrderWorkflow with id order-<order id>, the OrderPlaced payload as its
// input, its total in the memo and OrderId and CustomerId as search
// attributes, as the CLI starts it; order.cancel_requested sends it the
// cancel signal.
func DefaultRoutes() []Route {
	return []Route{
		{
			EventType: events.TypeOrderPlaced,
			Start: &StartRoute{
				Workflow: OrderWorkflowType,
				WorkflowID: func(p events.Payload) string {
					return OrderWorkflowID(p.(events.OrderPlaced).OrderID)
				},
				Memo: func(_ events.Envelope, p events.Payload) map[string]any {
					o := p.(events.OrderPlaced)
					return map[string]any{MemoOrderTotal: events.Money{Amount: o.Total, Currency: o.Currency}}
				},
				SearchAttributes: func(p events.Payload) temporal.SearchAttributes {
					o := p.(events.OrderPlaced)
					return temporal.NewSearchAttributes(OrderIDKey.ValueSet(o.OrderID), CustomerIDKey.ValueSet(o.CustomerID))
				},
			},
		},
		{
			EventType: events.TypeOrderCancelRequested,
			Signal: &SignalRoute{
				WorkflowID: func(p events.Payload) string {
					return OrderWorkflowID(p.(events.OrderCancelRequested).OrderID)
				},
				Signal: SignalCancel,
				Arg: func(env events.Envelope, p events.Payload) any {
					return CancelRequest{
						Reason:        p.(events.OrderCancelRequested).Reason,
						EventID:       env.ID,
						CorrelationID: env.CorrelationID,
					}
				},
				Subject: func(p events.Payload) string {
					return "order " + p.(events.OrderCancelRequested).OrderID
				},
			},
		},
	}
}

// validateRoutes reports every problem of a route table at once.
func validateRoutes(routes []Route) error {
	var errs []error
	if len(routes) == 0 {
		errs = append(errs, errors.New("bridge: no routes"))
	}
	seen := map[string]bool{}
	for i, r := range routes {
		name := fmt.Sprintf("bridge: route %d (%q)", i, r.EventType)
		switch {
		case r.EventType == "":
			errs = append(errs, fmt.Errorf("%s: EventType is required", name))
		case !events.IsEvent(r.EventType):
			errs = append(errs, fmt.Errorf("%s: not a registered event type", name))
		case seen[r.EventType]:
			errs = append(errs, fmt.Errorf("%s: declared twice", name))
		}
		seen[r.EventType] = true
		if (r.Start == nil) == (r.Signal == nil) {
			errs = append(errs, fmt.Errorf("%s: exactly one of Start and Signal must be set", name))
		}
		if s := r.Start; s != nil {
			if s.Workflow == nil || s.Workflow == "" {
				errs = append(errs, fmt.Errorf("%s: Start.Workflow is required", name))
			}
			if s.WorkflowID == nil {
				errs = append(errs, fmt.Errorf("%s: Start.WorkflowID is required", name))
			}
		}
		if s := r.Signal; s != nil {
			if s.WorkflowID == nil {
				errs = append(errs, fmt.Errorf("%s: Signal.WorkflowID is required", name))
			}
			if s.Signal == "" {
				errs = append(errs, fmt.Errorf("%s: Signal.Signal is required", name))
			}
		}
	}
	return errors.Join(errs...)
}
