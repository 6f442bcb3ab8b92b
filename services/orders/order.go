// Package orders is the orders read model (the query side of CQRS): a
// projection of the order and inventory events into one row per order in
// its own store, and the queries orders.get and orders.list answered over
// RabbitMQ request-reply. The write side (the order saga) never reads it.
//
// The projection is idempotent and tolerates disorder, because RabbitMQ
// delivers at least once and a consumer with several handlers does not keep
// the publishing order:
//   - an event id applied before changes nothing;
//   - order.confirmed and order.cancelled are terminal: once one is applied,
//     no later or late event changes the status;
//   - another event changes the status only if it is not older (by its
//     envelope time) than the newest event applied to the order;
//   - order.placed always fills in the order's details, even when it arrives
//     after events that created the row, because those facts never change.
package orders

import (
	"time"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// ServiceName is the store component of the read model and the source of
// its replies.
const ServiceName = "orders"

// orderIDOf returns the order an event is about, or "" for an event the
// projection ignores (a type it does not follow, an inventory event of a
// reservation made outside an order).
func orderIDOf(p events.Payload) string {
	switch p := p.(type) {
	case events.OrderPlaced:
		return p.OrderID
	case events.OrderConfirmed:
		return p.OrderID
	case events.OrderCancelled:
		return p.OrderID
	case events.InventoryReserved:
		return p.OrderID
	case events.InventoryCommitted:
		return p.OrderID
	case events.InventoryReservationFailed:
		return p.OrderID
	case events.InventoryReleased:
		return p.OrderID
	}
	return ""
}

// fold applies one event to an order and reports whether it changed
// anything. o is the zero record for an order without a row. It is pure: the
// rules of the package documentation live here.
func fold(o contract.OrderRecord, env events.Envelope, p events.Payload) (contract.OrderRecord, bool) {
	at := env.Time.UTC().Truncate(time.Microsecond)
	before := o
	isNew := o.LastEventID == ""
	if isNew {
		o.OrderID = orderIDOf(p)
		o.Status = events.OrderStatusPlaced
		o.CreatedAt = at
	}
	// newer: not older than anything applied; equal times are applied in
	// arrival order.
	newer := isNew || !at.Before(o.LastEventAt)
	terminal := o.Status.Terminal()
	switch p := p.(type) {
	case events.OrderPlaced:
		fillDetails(&o, p.Details())
		if at.Before(o.CreatedAt) {
			o.CreatedAt = at
		}
	case events.OrderConfirmed:
		fillDetails(&o, p.Details)
		if !terminal {
			o.Status = events.OrderStatusConfirmed
		}
	case events.OrderCancelled:
		fillDetails(&o, p.Details)
		if !terminal {
			o.Status = events.OrderStatusCancelled
			o.FailureReason, o.FailedStep = p.Reason, p.FailedStep
		}
	case events.InventoryReserved, events.InventoryCommitted:
		if !terminal && newer {
			o.Status = events.OrderStatusReserved
		}
	case events.InventoryReservationFailed, events.InventoryReleased:
		// The stock is not held, but the order is not over until the saga
		// publishes order.cancelled (or retries): only the status the saga
		// decides is shown.
		if !terminal && newer && o.Status == events.OrderStatusReserved {
			o.Status = events.OrderStatusPlaced
		}
	}
	if newer {
		o.LastEventAt, o.LastEventID = at, env.ID
	}
	return o, !sameOrder(before, o)
}

// fillDetails sets the order's facts from d unless they are known already:
// they never change, whichever event brings them first.
func fillDetails(o *contract.OrderRecord, d *events.OrderDetails) {
	if d == nil || o.CustomerID != "" {
		return
	}
	o.CustomerID, o.MerchantID = d.CustomerID, d.MerchantID
	o.Lines = append([]events.OrderLine(nil), d.Lines...)
	o.Total, o.Currency = d.Total, d.Currency
}

func sameOrder(a, b contract.OrderRecord) bool {
	if len(a.Lines) != len(b.Lines) {
		return false
	}
	for i := range a.Lines {
		if a.Lines[i] != b.Lines[i] {
			return false
		}
	}
	a.Lines, b.Lines = nil, nil
	return a.OrderID == b.OrderID && a.CustomerID == b.CustomerID && a.MerchantID == b.MerchantID &&
		a.Total == b.Total && a.Currency == b.Currency && a.Status == b.Status &&
		a.FailureReason == b.FailureReason && a.FailedStep == b.FailedStep &&
		a.CreatedAt.Equal(b.CreatedAt) && a.LastEventAt.Equal(b.LastEventAt) && a.LastEventID == b.LastEventID
}
