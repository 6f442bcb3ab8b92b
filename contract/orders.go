package contract

import (
	"time"

	"github.com/sagaflow/sagaflow/events"
)

// OrderRecord is one order as the orders read model knows it: the Result of
// orders.get and, as a list, of orders.list. Its Status is an
// events.OrderStatus, declared with the query that filters by it.
type OrderRecord struct {
	// OrderID identifies the order.
	OrderID string `json:"order_id"`
	// CustomerID, MerchantID, Lines, Total and Currency come from
	// order.placed, or from the details of order.confirmed or
	// order.cancelled; they are empty while only other events have arrived.
	CustomerID string             `json:"customer_id"`
	MerchantID string             `json:"merchant_id"`
	Lines      []events.OrderLine `json:"lines"`
	Total      int64              `json:"total"`
	Currency   string             `json:"currency"`
	// Status is the order's status.
	Status events.OrderStatus `json:"status"`
	// FailureReason and FailedStep come from order.cancelled.
	FailureReason string `json:"failure_reason,omitempty"`
	FailedStep    string `json:"failed_step,omitempty"`
	// CreatedAt is the time of order.placed (until it arrives, of the
	// first event seen).
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is when the projection last changed the row.
	UpdatedAt time.Time `json:"updated_at"`
	// LastEventAt and LastEventID are the time and id of the newest event
	// applied to the order.
	LastEventAt time.Time `json:"last_event_at"`
	LastEventID string    `json:"last_event_id"`
}

// ReasonUnknownOrder is the Reply.Reason of orders.get for an order the
// read model has no record of.
const ReasonUnknownOrder = "unknown_order"
