package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/events"
)

// Application error types the order and reservation sagas fail with.
const (
	// ErrTypeInvalidOrder: the order.placed payload is invalid; the order saga
	// fails at once, without retrying.
	ErrTypeInvalidOrder = "InvalidOrder"
	// ErrTypeInvalidReservation: the reservation input is invalid.
	ErrTypeInvalidReservation = "InvalidReservation"
	// ErrTypeReservationFailed: the inventory service refused the reservation;
	// the error's details are the reason code and the failed lines.
	ErrTypeReservationFailed = "ReservationFailed"
	// ErrTypeReservationAborted: a reservation step failed for good (a commit
	// refused or unanswered, a reserve unanswered); what was held is
	// released. The error's detail is the reason code.
	ErrTypeReservationAborted = "ReservationAborted"
	// ErrTypeReservationNotCommitted: the reservation ended before the order
	// committed it (it expired or was released).
	ErrTypeReservationNotCommitted = "ReservationNotCommitted"
	// ErrTypePaymentFailed: the payment transfer ended without moving the
	// money; the error's detail is the transfer's reason code.
	ErrTypePaymentFailed = "PaymentFailed"
)

// Steps of the reservation saga. With the workflow id they derive command
// and event ids, so they are part of the saga's wire contract: never rename.
const (
	StepReserveInventory     = "reserve"
	StepCommitInventory      = "commit"
	StepReleaseInventory     = "release"
	StepPublishReservationKO = "publish-reservation-failed"
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

// Signal and update names of the reservation saga. SignalCommit and
// SignalRelease are accepted both as signals and as updates (the update
// returns the outcome; the signal is fire and forget).
const (
	// SignalCommit commits a held reservation; no payload.
	SignalCommit = "commit"
	// SignalRelease releases a held reservation; payload ReleaseRequest.
	SignalRelease = "release"
	// SignalReservationHeld is sent by a reservation saga to its parent
	// workflow once every line is held; payload ReservationHeld.
	SignalReservationHeld = "reservation-held"
)

// Signal and update name of the order saga.
const (
	// SignalCancel asks an order saga to cancel; payload CancelRequest. It is
	// accepted as a signal (the bridge's order.cancel_requested) and as an
	// update, whose validator rejects a cancel after confirmation.
	SignalCancel = "cancel"
)

// DefaultReservationTTL is how long an order holds its stock before the
// reservation expires on its own. It must outlast the payment, whose
// retries can take minutes.
const DefaultReservationTTL = 30 * time.Minute

// MemoOrderTotal is the memo key under which an order saga carries its total
// (an events.Money), shown in the Web UI's list of workflows.
const MemoOrderTotal = "total"

// ReservationInput is the input of ReserveInventoryWorkflow.
type ReservationInput struct {
	ReservationID string `json:"reservation_id"`
	// OrderID names the order the stock is held for; optional.
	OrderID string             `json:"order_id,omitempty"`
	Lines   []events.StockLine `json:"lines"`
	// TTL is how long the reservation is held before it is released with
	// reason "expired"; positive.
	TTL time.Duration `json:"ttl"`
}

// Validate checks the ids, the lines (with the inventory.reserve rules) and
// a positive time-to-live.
func (in ReservationInput) Validate() error {
	var errs []error
	if err := (events.InventoryReserve{ReservationID: in.ReservationID, OrderID: in.OrderID, Lines: in.Lines}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if in.TTL <= 0 {
		errs = append(errs, fmt.Errorf("ttl: must be positive, got %s", in.TTL))
	}
	return errors.Join(errs...)
}

// ReservationOutcome is how a reservation ended.
type ReservationOutcome string

// The outcomes of a reservation.
const (
	// ReservationCommitted: the held stock became a sale.
	ReservationCommitted ReservationOutcome = "committed"
	// ReservationReleased: a release request gave the stock back.
	ReservationReleased ReservationOutcome = "released"
	// ReservationExpired: the time-to-live passed and the stock went back.
	ReservationExpired ReservationOutcome = "expired"
)

// ReservationResult is the result of ReserveInventoryWorkflow.
type ReservationResult struct {
	ReservationID string             `json:"reservation_id"`
	Outcome       ReservationOutcome `json:"outcome"`
	// ReleaseReason is the reason the release carried (released, expired or
	// compensated) when Outcome is ReservationReleased or ReservationExpired.
	ReleaseReason string `json:"release_reason,omitempty"`
}

// ReleaseRequest is the payload of SignalRelease.
type ReleaseRequest struct {
	// Reason is events.ReleaseReasonReleased (the default when empty) or
	// events.ReleaseReasonCompensated, used by a parent saga undoing it.
	Reason string `json:"reason,omitempty"`
}

// ReservationHeld is the payload of SignalReservationHeld.
type ReservationHeld struct {
	ReservationID string `json:"reservation_id"`
}

// HoldState is where a reservation's hold stands.
type HoldState string

// The states of a reservation's hold.
const (
	HoldReserving  HoldState = "reserving"
	HoldHeld       HoldState = "held"
	HoldCommitting HoldState = "committing"
	HoldCommitted  HoldState = "committed"
	HoldReleasing  HoldState = "releasing"
	HoldReleased   HoldState = "released"
	HoldFailed     HoldState = "failed"
)

// ReservationState is what the status query of a reservation saga returns:
// the saga's progress plus the hold.
type ReservationState struct {
	SagaState
	ReservationID string    `json:"reservation_id"`
	Hold          HoldState `json:"hold"`
	// ExpiresAt is when an unclaimed hold is released (workflow time).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// ReleaseReason is set once a release was decided.
	ReleaseReason string `json:"release_reason,omitempty"`
}

// ReservationWorkflowID is the workflow id of a reservation.
func ReservationWorkflowID(reservationID string) string { return "reservation-" + reservationID }

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

// CancelRequest is the payload of SignalCancel. Its JSON shape matches the
// bridge's cancel signal (internal/bridge.CancelRequest) and the
// order.cancel_requested payload.
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

// OrderStartOptions are the options to start an order saga with, shared by
// the CLI and the bridge: the workflow id, the total as memo, OrderId and
// CustomerId as search attributes, and the id policies of transfers (a
// duplicate order.placed attaches to the running saga, and an order id never
// runs twice).
func OrderStartOptions(order events.OrderPlaced, taskQueue string) client.StartWorkflowOptions {
	if taskQueue == "" {
		taskQueue = TaskQueue
	}
	return client.StartWorkflowOptions{
		ID:                       OrderWorkflowID(order.OrderID),
		TaskQueue:                taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo: map[string]any{
			MemoOrderTotal: events.Money{Amount: order.Total, Currency: order.Currency},
		},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			OrderIDKey.ValueSet(order.OrderID),
			CustomerIDKey.ValueSet(order.CustomerID),
		),
	}
}
