package events

// Type names of the queries: requests for a service's state, sent to its
// queue like a command and answered by a Reply whose Result holds the
// answer. A query changes nothing.
const (
	// QueryLedgerBalance (ledger.balance) answers with the account.
	QueryLedgerBalance = "ledger.balance"
	// QueryLedgerStatement (ledger.statement) answers with the account and
	// every event of its stream.
	QueryLedgerStatement = "ledger.statement"
	// QueryInventoryStock (inventory.stock) answers with a list of stock
	// levels.
	QueryInventoryStock = "inventory.stock"
	// QueryInventoryReservations (inventory.reservations) answers with a
	// list of reservations.
	QueryInventoryReservations = "inventory.reservations"
	// QueryOrdersGet (orders.get) answers with one order of the orders read
	// model.
	QueryOrdersGet = "orders.get"
	// QueryOrdersList (orders.list) answers with a list of orders, newest
	// first.
	QueryOrdersList = "orders.list"
)

// LedgerBalanceQuery (ledger.balance) asks for an account's state.
type LedgerBalanceQuery struct {
	AccountID string `json:"account_id"`
}

// Validate checks that the account id is set.
func (q LedgerBalanceQuery) Validate() error {
	var v validator
	v.required("account_id", q.AccountID)
	return v.err()
}

// LedgerStatementQuery (ledger.statement) asks for an account's state and
// its whole stream.
type LedgerStatementQuery struct {
	AccountID string `json:"account_id"`
}

// Validate checks that the account id is set.
func (q LedgerStatementQuery) Validate() error {
	var v validator
	v.required("account_id", q.AccountID)
	return v.err()
}

// InventoryStockQuery (inventory.stock) asks for stock levels.
type InventoryStockQuery struct {
	// SKUs to report; empty reports every sku.
	SKUs []string `json:"skus,omitempty"`
}

// Validate accepts every query.
func (InventoryStockQuery) Validate() error { return nil }

// InventoryReservationsQuery (inventory.reservations) asks for
// reservations and their state.
type InventoryReservationsQuery struct {
	// ReservationID, when set, reports that reservation only.
	ReservationID string `json:"reservation_id,omitempty"`
	// OrderID, when set, reports the order's reservations only.
	OrderID string `json:"order_id,omitempty"`
}

// Validate accepts every query.
func (InventoryReservationsQuery) Validate() error { return nil }

// OrderStatus is where an order stands in the orders read model. It is
// declared here rather than with the read model's other result types
// because OrdersListQuery filters by it.
type OrderStatus string

// The statuses of an order in the read model.
const (
	// OrderStatusPlaced: the order was placed; nothing is held for it yet.
	OrderStatusPlaced OrderStatus = "placed"
	// OrderStatusReserved: its stock is held (or committed) and payment
	// pending.
	OrderStatusReserved OrderStatus = "reserved"
	// OrderStatusConfirmed: stock committed and payment taken. Terminal.
	OrderStatusConfirmed OrderStatus = "confirmed"
	// OrderStatusCancelled: the order was undone. Terminal.
	OrderStatusCancelled OrderStatus = "cancelled"
)

// Terminal reports whether no event changes the status any more.
func (s OrderStatus) Terminal() bool { return s == OrderStatusConfirmed || s == OrderStatusCancelled }

// Valid reports whether s is one of the statuses.
func (s OrderStatus) Valid() bool {
	switch s {
	case OrderStatusPlaced, OrderStatusReserved, OrderStatusConfirmed, OrderStatusCancelled:
		return true
	}
	return false
}

// OrdersGetQuery (orders.get) asks the orders read model for one order.
type OrdersGetQuery struct {
	OrderID string `json:"order_id"`
}

// Validate checks that the order id is set.
func (q OrdersGetQuery) Validate() error {
	var v validator
	v.required("order_id", q.OrderID)
	return v.err()
}

// Limits of orders.list.
const (
	// DefaultOrdersListLimit is the number of orders a list returns when its
	// limit is zero.
	DefaultOrdersListLimit = 20
	// MaxOrdersListLimit is the largest limit a list accepts.
	MaxOrdersListLimit = 500
)

// OrdersListQuery (orders.list) asks the orders read model for a
// customer's orders, newest first.
type OrdersListQuery struct {
	// CustomerID whose orders are listed. Required.
	CustomerID string `json:"customer_id"`
	// Status, when set, keeps only orders with that status.
	Status OrderStatus `json:"status,omitempty"`
	// Limit is the most orders returned: 0 means DefaultOrdersListLimit
	// (20); at most MaxOrdersListLimit (500). EffectiveLimit resolves it.
	Limit int `json:"limit,omitempty"`
}

// Validate checks the customer id, the status and the limit.
func (q OrdersListQuery) Validate() error {
	var v validator
	v.required("customer_id", q.CustomerID)
	if q.Status != "" && !q.Status.Valid() {
		v.addf("status", "must be %q, %q, %q or %q, got %q",
			OrderStatusPlaced, OrderStatusReserved, OrderStatusConfirmed, OrderStatusCancelled, q.Status)
	}
	if q.Limit < 0 || q.Limit > MaxOrdersListLimit {
		v.addf("limit", "must be between 0 and %d, got %d", MaxOrdersListLimit, q.Limit)
	}
	return v.err()
}

// EffectiveLimit is the number of orders the query asks for at most, with
// the default applied to a zero Limit.
func (q OrdersListQuery) EffectiveLimit() int {
	if q.Limit == 0 {
		return DefaultOrdersListLimit
	}
	return q.Limit
}
