package contract

import "github.com/sagaflow/sagaflow/events"

// StockLevel is a sku's stock: the Result of inventory.restock and, as a
// list ordered by sku, of inventory.stock.
type StockLevel struct {
	// SKU is the stock keeping unit.
	SKU string `json:"sku"`
	// OnHand is the number of units in stock, reserved or not.
	OnHand int64 `json:"on_hand"`
	// Reserved is the number of units held by reservations.
	Reserved int64 `json:"reserved"`
	// Available is OnHand − Reserved: what a new reservation can take.
	Available int64 `json:"available"`
}

// StockReservationState is the life-cycle state of an inventory
// reservation.
type StockReservationState string

// The states of an inventory reservation.
const (
	// StockReservationHeld: the stock is reserved.
	StockReservationHeld StockReservationState = "held"
	// StockReservationCommitted: the stock was sold (taken off on-hand).
	StockReservationCommitted StockReservationState = "committed"
	// StockReservationReleased: the stock went back to available.
	StockReservationReleased StockReservationState = "released"
)

// StockReservation is an inventory reservation and its lines, as the
// inventory service reports it: in InventoryReserveResult and, as a list,
// in the Result of inventory.reservations.
type StockReservation struct {
	// ReservationID identifies the reservation.
	ReservationID string `json:"reservation_id"`
	// OrderID is the order it holds stock for, if any.
	OrderID string `json:"order_id,omitempty"`
	// State is held, committed or released.
	State StockReservationState `json:"state"`
	// Reason is the release reason (an events.ReleaseReason* value) of a
	// released reservation.
	Reason string `json:"reason,omitempty"`
	// Lines are the reserved quantities, one line per sku, ordered by sku.
	Lines []events.StockLine `json:"lines"`
}

// FailedStockLine is a line a reservation could not hold.
type FailedStockLine struct {
	// SKU is the line's sku.
	SKU string `json:"sku"`
	// Requested is the quantity the line asked for.
	Requested int64 `json:"requested"`
	// Available is what the sku had available (0 for an unknown sku).
	Available int64 `json:"available"`
	// Reason is invalid_quantity, unknown_sku or insufficient_stock.
	Reason string `json:"reason"`
}

// InventoryReserveResult is the Result of the replies to inventory.reserve,
// inventory.release and inventory.commit.
type InventoryReserveResult struct {
	// Reservation is the reservation after the command; nil when a reserve
	// was rejected for its lines.
	Reservation *StockReservation `json:"reservation,omitempty"`
	// FailedLines lists every line that failed when a reserve was rejected.
	FailedLines []FailedStockLine `json:"failed_lines,omitempty"`
}

// ReasonReservationExists is the Reply.Reason of an inventory.reserve that
// reuses a reservation id with other lines.
const ReasonReservationExists = "reservation_exists"
