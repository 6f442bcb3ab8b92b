package contract

import (
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/events"
)

// OrderWorkflowType is the registered name of the order saga.
const OrderWorkflowType = "OrderWorkflow"

// Application error types the order saga fails with.
const (
	// ErrTypeInvalidOrder: the order.placed payload is invalid; the order saga
	// fails at once, without retrying.
	ErrTypeInvalidOrder = "InvalidOrder"
	// ErrTypeReservationNotCommitted: the reservation ended before the order
	// committed it (it expired or was released).
	ErrTypeReservationNotCommitted = "ReservationNotCommitted"
	// ErrTypePaymentFailed: the payment transfer ended without moving the
	// money; the error's detail is the transfer's reason code.
	ErrTypePaymentFailed = "PaymentFailed"
)

// Steps of the order saga, also part of its wire contract: the failed step
// of order.cancelled is one of them.
const (
	StepOrderReserve        = "reserve-inventory"
	StepOrderPayment        = "payment"
	StepOrderCommit         = "commit-inventory"
	StepOrderRefund         = "refund-payment"
	StepOrderReleaseInv     = "release-inventory"
	StepOrderPublishOutcome = "publish-outcome"
)

// Signal and update name of the order saga.
const (
	// SignalCancel asks an order saga to cancel; payload CancelRequest. It is
	// accepted as a signal (the bridge's order.cancel_requested) and as an
	// update, whose validator rejects a cancel after confirmation.
	SignalCancel = "cancel"
)

// MemoOrderTotal is the memo key under which an order saga carries its total
// (an events.Money), shown in the Web UI's list of workflows.
const MemoOrderTotal = "total"

// OrderWorkflowID is the workflow id of an order saga.
func OrderWorkflowID(orderID string) string { return "order-" + orderID }

// OrderTransferID is the transfer id of an order's payment, derived from
// the order id so a restarted order never pays twice.
func OrderTransferID(orderID string) string { return "order-" + orderID }

// OrderRefundTransferID is the transfer id of the refund of an order's
// payment. attempt counts the operator's retries of a failed refund from 1,
// because a closed transfer id cannot be reused.
func OrderRefundTransferID(orderID string, attempt int) string {
	if attempt <= 1 {
		return "order-" + orderID + "-refund"
	}
	return fmt.Sprintf("order-%s-refund-%d", orderID, attempt)
}

// CancelRequest is the payload of SignalCancel: the bridge builds it from
// an order.cancel_requested event, the CLI sends it as an update.
type CancelRequest struct {
	// Reason is the customer's reason, carried into order.cancelled.
	Reason string `json:"reason,omitempty"`
	// EventID is the id of the order.cancel_requested envelope the bridge
	// turned into this signal, kept for the audit trail.
	EventID string `json:"event_id,omitempty"`
	// CorrelationID is that envelope's correlation id.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// OrderStage is how far an order saga got.
type OrderStage string

// The stages of an order saga.
const (
	StageReserving  OrderStage = "reserving"
	StagePaying     OrderStage = "paying"
	StageCommitting OrderStage = "committing"
	StageConfirmed  OrderStage = "confirmed"
	StageCancelling OrderStage = "cancelling"
	StageCancelled  OrderStage = "cancelled"
)

// OrderOutcome is how an order ended.
type OrderOutcome string

// The outcomes of an order.
const (
	// OrderConfirmed: stock committed, payment taken, order.confirmed published.
	OrderConfirmed OrderOutcome = "confirmed"
	// OrderCancelled: a step failed or the customer cancelled; what was done
	// is undone and order.cancelled published.
	OrderCancelled OrderOutcome = "cancelled"
	// OrderResolved: a compensation failed and an operator resolved the order.
	OrderResolved OrderOutcome = "resolved"
)

// OrderResult is the result of OrderWorkflow.
type OrderResult struct {
	OrderID string       `json:"order_id"`
	Outcome OrderOutcome `json:"outcome"`
	// Reason is the order.cancelled reason: a machine-readable code of the
	// failure ("insufficient_stock") or the customer's reason.
	Reason string `json:"reason,omitempty"`
	// FailedStep names the step that failed, empty for a customer's cancel.
	FailedStep string `json:"failed_step,omitempty"`
	// Error is the full failure, including failed compensations.
	Error string `json:"error,omitempty"`
}

// OrderState is what the status query of an order saga returns: the saga's
// progress plus the order's stage and cancellation.
type OrderState struct {
	SagaState
	OrderID string     `json:"order_id"`
	Stage   OrderStage `json:"stage"`
	// Paid reports that the payment transfer completed.
	Paid bool `json:"paid"`
	// CancelReason is the customer's reason once a cancel was accepted.
	CancelReason string `json:"cancel_reason,omitempty"`
	// IgnoredCancels are cancel signals that came too late to be honoured.
	IgnoredCancels []CancelRequest `json:"ignored_cancels,omitempty"`
}

// Memo keys the bridge writes on every workflow it starts from an event,
// linking the workflow to that event for the audit trail.
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

// OrderStartOptions are the options to start an order saga with, used by
// the CLI, the bridge, the load generator and the benchmark alike: the
// policies of StartOptions (an order id runs once, ever; a duplicate
// order.placed is refused with the running or closed saga's run id), the
// total as memo, OrderId and CustomerId as search attributes.
func OrderStartOptions(order events.OrderPlaced, taskQueue string) client.StartWorkflowOptions {
	opts := StartOptions(OrderWorkflowID(order.OrderID), taskQueue)
	opts.Memo = map[string]any{
		MemoOrderTotal: events.Money{Amount: order.Total, Currency: order.Currency},
	}
	opts.TypedSearchAttributes = temporal.NewSearchAttributes(
		OrderIDKey.ValueSet(order.OrderID),
		CustomerIDKey.ValueSet(order.CustomerID),
	)
	return opts
}
