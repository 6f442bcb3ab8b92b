package bridge

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
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
// has ended: Options must carry the saga's id policies (contract.StartOptions).
type StartRoute struct {
	// Workflow is the registered workflow type name. Required.
	Workflow string
	// Options builds the start options from the payload and the bridge's
	// task queue: the saga's start-options function from the contract
	// package, the same the CLI uses. The bridge adds the event's ids to
	// the memo (the Memo* keys of contract). Required.
	Options func(p events.Payload, taskQueue string) client.StartWorkflowOptions
	// Input builds the workflow's single argument. Default: the payload.
	Input func(events.Envelope, events.Payload) any
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

// DefaultRoutes are the routes of the system's sagas: order.placed starts
// the order saga with contract.OrderStartOptions and the OrderPlaced
// payload as its input, exactly as the CLI starts it; order.cancel_requested
// sends it the cancel signal.
func DefaultRoutes() []Route {
	return []Route{
		{
			EventType: events.TypeOrderPlaced,
			Start: &StartRoute{
				Workflow: contract.OrderWorkflowType,
				Options: func(p events.Payload, taskQueue string) client.StartWorkflowOptions {
					return contract.OrderStartOptions(p.(events.OrderPlaced), taskQueue)
				},
			},
		},
		{
			EventType: events.TypeOrderCancelRequested,
			Signal: &SignalRoute{
				WorkflowID: func(p events.Payload) string {
					return contract.OrderWorkflowID(p.(events.OrderCancelRequested).OrderID)
				},
				Signal: contract.SignalCancel,
				Arg: func(env events.Envelope, p events.Payload) any {
					return contract.CancelRequest{
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
			if s.Workflow == "" {
				errs = append(errs, fmt.Errorf("%s: Start.Workflow is required", name))
			}
			if s.Options == nil {
				errs = append(errs, fmt.Errorf("%s: Start.Options is required", name))
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
