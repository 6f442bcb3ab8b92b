package contract

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/events"
)

// ReservationWorkflowType is the registered name of the inventory
// reservation saga.
const ReservationWorkflowType = "ReserveInventoryWorkflow"

// Application error types the reservation saga fails with.
const (
	// ErrTypeInvalidReservation: the reservation input is invalid.
	ErrTypeInvalidReservation = "InvalidReservation"
	// ErrTypeReservationFailed: the inventory service refused the reservation;
	// the error's details are the reason code and the failed lines.
	ErrTypeReservationFailed = "ReservationFailed"
	// ErrTypeReservationAborted: a reservation step failed for good (a commit
	// refused or unanswered, a reserve unanswered); what was held is
	// released. The error's detail is the reason code.
	ErrTypeReservationAborted = "ReservationAborted"
)

// Steps of the reservation saga. With the workflow id they derive command
// and event ids, so they are part of the saga's wire contract: never rename.
const (
	StepReserveInventory     = "reserve"
	StepCommitInventory      = "commit"
	StepReleaseInventory     = "release"
	StepPublishReservationKO = "publish-reservation-failed"
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

// DefaultReservationTTL is how long a reservation holds its stock before it
// expires on its own. An order holds its stock for this long past its
// deadline, so that the hold outlasts the payment, whose retries last
// until that deadline.
const DefaultReservationTTL = 30 * time.Minute

// ReservationWorkflowID is the workflow id of a reservation.
func ReservationWorkflowID(reservationID string) string { return "reservation-" + reservationID }

// ReservationStartOptions are the options to start a standalone
// reservation with: the policies of StartOptions (one saga per reservation
// id, ever).
func ReservationStartOptions(reservationID, taskQueue string) client.StartWorkflowOptions {
	return StartOptions(ReservationWorkflowID(reservationID), taskQueue)
}

// ReservationInput is the input of ReserveInventoryWorkflow.
type ReservationInput struct {
	ReservationID string `json:"reservation_id"`
	// OrderID names the order the stock is held for; optional.
	OrderID string             `json:"order_id,omitempty"`
	Lines   []events.StockLine `json:"lines"`
	// TTL is how long the reservation is held before it is released with
	// reason "expired"; positive.
	TTL time.Duration `json:"ttl"`
	// Deadline is when the reservation stops retrying a reserve or commit
	// that fails for a reason of the infrastructure, and gives up instead
	// (reason ReasonDeadlinePassed). Zero: DefaultReservationDeadline
	// after the reservation started. An order gives its own deadline.
	Deadline time.Time `json:"deadline,omitzero"`
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
