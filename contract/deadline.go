package contract

import "time"

// A saga's deadline is the business limit of its forward steps: a step whose
// command fails for a reason of the infrastructure (the broker or a service
// down, no reply within the command timeout) is retried with the same
// command id until the deadline, because the services deduplicate command
// ids and a retry never applies a command twice. Only a business rejection
// (insufficient funds, unknown sku, ...) or the deadline makes the saga
// compensate. A zero deadline in an input means the saga type's default,
// counted from the moment the saga started.
const (
	// DefaultTransferDeadline is how long a transfer keeps retrying: a day,
	// so that an overnight outage of the broker or the ledger, fixed the
	// next morning, still moves the money instead of failing it, while the
	// payer learns within a business day when it could not be moved.
	DefaultTransferDeadline = 24 * time.Hour
	// DefaultOrderDeadline is an order's payment window: four hours, long
	// enough to ride out an outage of the broker or a service including a
	// restore from backup, short enough that stock held for an order that
	// cannot be paid goes back on sale the same day. The order's payment
	// transfer and its reservation get the order's deadline.
	DefaultOrderDeadline = 4 * time.Hour
	// DefaultReservationDeadline is how long a standalone reservation
	// keeps retrying its reserve and commit: an order's payment window.
	DefaultReservationDeadline = DefaultOrderDeadline
)

// ReasonDeadlinePassed is the failure reason of a saga whose step was still
// failing for a reason of the infrastructure when its deadline passed: the
// reason of its result and of its outcome event (transfer.failed,
// order.cancelled).
const ReasonDeadlinePassed = "deadline_passed"

// DeadlineOf is the deadline of a saga started at start: deadline, or, when
// it is zero, start plus the saga type's default def.
func DeadlineOf(deadline, start time.Time, def time.Duration) time.Time {
	if !deadline.IsZero() {
		return deadline
	}
	return start.Add(def)
}
