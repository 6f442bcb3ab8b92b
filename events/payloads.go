package events

import "time"

// Type names of the domain events: past-tense facts. Each is also the routing
// key of its envelope on the "sagas.events" topic exchange.
const (
	TypeOrderPlaced                = "order.placed"
	TypeOrderConfirmed             = "order.confirmed"
	TypeOrderCancelled             = "order.cancelled"
	TypeOrderCancelRequested       = "order.cancel_requested"
	TypeInventoryReserved          = "inventory.reserved"
	TypeInventoryReservationFailed = "inventory.reservation_failed"
	TypeInventoryCommitted         = "inventory.committed"
	TypeInventoryReleased          = "inventory.released"
	TypeFundsWithdrawn             = "funds.withdrawn"
	TypeFundsDeposited             = "funds.deposited"
	TypeFundsRefunded              = "funds.refunded"
	TypeTransferCompleted          = "transfer.completed"
	TypeTransferFailed             = "transfer.failed"
)

// Reasons an inventory reservation is released, carried by
// InventoryReleased.Reason and InventoryRelease.Reason.
const (
	// ReleaseReasonReleased: the holder released it on purpose.
	ReleaseReasonReleased = "released"
	// ReleaseReasonExpired: it was held past its time-to-live.
	ReleaseReasonExpired = "expired"
	// ReleaseReasonCompensated: a saga undid it after a later step failed.
	ReleaseReasonCompensated = "compensated"
)

func (v *validator) releaseReason(field, s string) {
	switch s {
	case ReleaseReasonReleased, ReleaseReasonExpired, ReleaseReasonCompensated:
	case "":
		v.add(field, "required")
	default:
		v.addf(field, "must be %q, %q or %q", ReleaseReasonReleased, ReleaseReasonExpired, ReleaseReasonCompensated)
	}
}

// OrderLine is one line of an order: a quantity of a sku at a unit price in
// the order's currency, in minor units.
type OrderLine struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// StockLine is a quantity of one sku, as reserved, committed or released.
type StockLine struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// OrderPlaced (order.placed, data version 2) says a customer placed an order
// with a merchant; it starts the order saga.
//
// Version 1 carried the customer as "customer" and the total as a Money object
// "amount" ({"order_id","customer","merchant_id","lines",
// "amount":{"amount","currency"}}); version 2 renamed the customer to
// "customer_id" and split the amount into "total" and "currency". Decode
// upcasts version 1 data to this shape.
type OrderPlaced struct {
	OrderID    string      `json:"order_id"`
	CustomerID string      `json:"customer_id"`
	MerchantID string      `json:"merchant_id"`
	Lines      []OrderLine `json:"lines"`
	// Currency of every unit price and of Total.
	Currency string `json:"currency"`
	// Total in minor units; it must equal the sum of quantity × unit price.
	Total int64 `json:"total"`
	// Deadline is the order's payment window: until then the order saga
	// retries steps that fail for a reason of the infrastructure; after it
	// the order is cancelled. Optional; zero means the saga's default
	// (contract.DefaultOrderDeadline after it started).
	Deadline time.Time `json:"deadline,omitzero"`
}

// Validate checks ids, between 1 and MaxLines lines with positive quantities
// and prices, and a positive total equal to the sum of the lines, computed
// without overflow.
func (p OrderPlaced) Validate() error {
	var v validator
	v.id("order_id", p.OrderID)
	v.id("customer_id", p.CustomerID)
	v.id("merchant_id", p.MerchantID)
	v.distinct("merchant_id", p.MerchantID, "customer_id", p.CustomerID)
	v.currency("currency", p.Currency)
	v.positive("total", p.Total)
	if v.lineCount("lines", len(p.Lines), true) {
		var sum int64
		sumOK := true
		for i, l := range p.Lines {
			f := index("lines", i)
			v.id(path(f, "sku"), l.SKU)
			v.positive(path(f, "quantity"), l.Quantity)
			v.positive(path(f, "unit_price"), l.UnitPrice)
			if sumOK && l.Quantity > 0 && l.UnitPrice > 0 {
				if sum, sumOK = mulAdd(sum, l.Quantity, l.UnitPrice); !sumOK {
					v.add(path(f, "unit_price"), "quantity × unit_price overflows the total")
				}
			} else {
				sumOK = false
			}
		}
		if sumOK && p.Total > 0 && sum != p.Total {
			v.addf("total", "must equal the sum of the lines (%d), got %d", sum, p.Total)
		}
	}
	return v.err()
}

// OrderDetails are the facts of a placed order. The order saga's outcome
// events carry them, so that a consumer that never saw order.placed (an order
// started directly on Temporal, not through the event) still knows the order.
type OrderDetails struct {
	CustomerID string      `json:"customer_id"`
	MerchantID string      `json:"merchant_id"`
	Lines      []OrderLine `json:"lines"`
	Currency   string      `json:"currency"`
	// Total in minor units of Currency: the sum of the lines.
	Total int64 `json:"total"`
}

// Details returns the order's details.
func (p OrderPlaced) Details() *OrderDetails {
	return &OrderDetails{CustomerID: p.CustomerID, MerchantID: p.MerchantID,
		Lines: append([]OrderLine(nil), p.Lines...), Currency: p.Currency, Total: p.Total}
}

// details checks optional details with the order.placed rules,
// reporting problems under "details.".
func (v *validator) details(orderID string, d *OrderDetails) {
	if d == nil {
		return
	}
	err := OrderPlaced{OrderID: orderID, CustomerID: d.CustomerID, MerchantID: d.MerchantID,
		Lines: d.Lines, Currency: d.Currency, Total: d.Total}.Validate()
	for _, fe := range FieldErrors(err) {
		if fe.Field != "order_id" {
			v.add(path("details", fe.Field), fe.Problem)
		}
	}
}

// OrderConfirmed (order.confirmed) says an order's stock is committed and its
// payment taken.
type OrderConfirmed struct {
	OrderID string `json:"order_id"`
	// Details are the order's facts; optional, valid as order.placed's.
	Details *OrderDetails `json:"details,omitempty"`
}

// Validate checks the order id and the details, if any.
func (p OrderConfirmed) Validate() error {
	var v validator
	v.id("order_id", p.OrderID)
	v.details(p.OrderID, p.Details)
	return v.err()
}

// OrderCancelled (order.cancelled) says an order saga undid what it had done,
// because a step failed or the customer cancelled.
type OrderCancelled struct {
	OrderID string `json:"order_id"`
	// Reason says why, for people and for the read model.
	Reason string `json:"reason"`
	// FailedStep names the step that failed, empty for a customer's cancel.
	FailedStep string `json:"failed_step,omitempty"`
	// Details are the order's facts; optional, valid as order.placed's.
	Details *OrderDetails `json:"details,omitempty"`
}

// Validate checks the order id, that a reason is given, and the details, if
// any.
func (p OrderCancelled) Validate() error {
	var v validator
	v.id("order_id", p.OrderID)
	v.text("reason", p.Reason, true)
	v.optionalID("failed_step", p.FailedStep)
	v.details(p.OrderID, p.Details)
	return v.err()
}

// OrderCancelRequested (order.cancel_requested) says a customer asked to
// cancel an order; the bridge turns it into the order saga's cancel signal.
type OrderCancelRequested struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason,omitempty"`
}

// Validate checks the order id and an optional reason.
func (p OrderCancelRequested) Validate() error {
	var v validator
	v.id("order_id", p.OrderID)
	v.text("reason", p.Reason, false)
	return v.err()
}

// InventoryReserved (inventory.reserved) says every line of a reservation is
// held.
type InventoryReserved struct {
	ReservationID string      `json:"reservation_id"`
	OrderID       string      `json:"order_id,omitempty"`
	Lines         []StockLine `json:"lines"`
}

// Validate checks the ids and between 1 and MaxLines lines.
func (p InventoryReserved) Validate() error {
	var v validator
	v.id("reservation_id", p.ReservationID)
	v.optionalID("order_id", p.OrderID)
	v.stockLines("lines", p.Lines, true)
	return v.err()
}

// InventoryReservationFailed (inventory.reservation_failed) says a reservation
// was refused as a whole; FailedLines names the lines that could not be held.
type InventoryReservationFailed struct {
	ReservationID string `json:"reservation_id"`
	OrderID       string `json:"order_id,omitempty"`
	// Reason is a machine-readable code such as "insufficient_stock".
	Reason      string      `json:"reason"`
	FailedLines []StockLine `json:"failed_lines,omitempty"`
}

// Validate checks the ids, the reason and the failed lines.
func (p InventoryReservationFailed) Validate() error {
	var v validator
	v.id("reservation_id", p.ReservationID)
	v.optionalID("order_id", p.OrderID)
	v.text("reason", p.Reason, true)
	v.stockLines("failed_lines", p.FailedLines, false)
	return v.err()
}

// InventoryCommitted (inventory.committed) says a held reservation became a
// sale: its quantities left on-hand stock for good.
type InventoryCommitted struct {
	ReservationID string      `json:"reservation_id"`
	OrderID       string      `json:"order_id,omitempty"`
	Lines         []StockLine `json:"lines"`
}

// Validate checks the ids and between 1 and MaxLines lines.
func (p InventoryCommitted) Validate() error {
	var v validator
	v.id("reservation_id", p.ReservationID)
	v.optionalID("order_id", p.OrderID)
	v.stockLines("lines", p.Lines, true)
	return v.err()
}

// InventoryReleased (inventory.released) says a held reservation was given
// back to available stock.
type InventoryReleased struct {
	ReservationID string `json:"reservation_id"`
	OrderID       string `json:"order_id,omitempty"`
	// Reason is ReleaseReasonReleased, ReleaseReasonExpired or
	// ReleaseReasonCompensated.
	Reason string      `json:"reason"`
	Lines  []StockLine `json:"lines"`
}

// Validate checks the ids, the reason and between 1 and MaxLines lines.
func (p InventoryReleased) Validate() error {
	var v validator
	v.id("reservation_id", p.ReservationID)
	v.optionalID("order_id", p.OrderID)
	v.releaseReason("reason", p.Reason)
	v.stockLines("lines", p.Lines, true)
	return v.err()
}

// validateFunds is shared by the three funds events, which differ only in
// meaning.
func validateFunds(accountID string, amount, balance Money, transferID string) error {
	var v validator
	v.id("account_id", accountID)
	v.positiveMoney("amount", amount)
	v.nonNegativeMoney("balance", balance)
	v.sameCurrency("balance", amount, balance)
	v.optionalID("transfer_id", transferID)
	return v.err()
}

// FundsWithdrawn (funds.withdrawn) says the ledger took Amount from an
// account, leaving Balance.
type FundsWithdrawn struct {
	AccountID string `json:"account_id"`
	Amount    Money  `json:"amount"`
	// Balance is the account's balance after the change.
	Balance Money `json:"balance"`
	// TransferID names the transfer this was part of, if any.
	TransferID string `json:"transfer_id,omitempty"`
}

// Validate checks a positive amount and a non-negative balance in one currency.
func (p FundsWithdrawn) Validate() error {
	return validateFunds(p.AccountID, p.Amount, p.Balance, p.TransferID)
}

// FundsDeposited (funds.deposited) says the ledger added Amount to an
// account, leaving Balance.
type FundsDeposited struct {
	AccountID string `json:"account_id"`
	Amount    Money  `json:"amount"`
	// Balance is the account's balance after the change.
	Balance Money `json:"balance"`
	// TransferID names the transfer this was part of, if any.
	TransferID string `json:"transfer_id,omitempty"`
}

// Validate checks a positive amount and a non-negative balance in one currency.
func (p FundsDeposited) Validate() error {
	return validateFunds(p.AccountID, p.Amount, p.Balance, p.TransferID)
}

// FundsRefunded (funds.refunded) says the ledger gave back Amount that an
// earlier withdrawal took, leaving Balance.
type FundsRefunded struct {
	AccountID string `json:"account_id"`
	Amount    Money  `json:"amount"`
	// Balance is the account's balance after the change.
	Balance Money `json:"balance"`
	// TransferID names the transfer this was part of, if any.
	TransferID string `json:"transfer_id,omitempty"`
}

// Validate checks a positive amount and a non-negative balance in one currency.
func (p FundsRefunded) Validate() error {
	return validateFunds(p.AccountID, p.Amount, p.Balance, p.TransferID)
}

func validateTransfer(v *validator, transferID, source, target string, amount Money) {
	v.id("transfer_id", transferID)
	v.id("source_account_id", source)
	v.id("target_account_id", target)
	v.distinct("target_account_id", target, "source_account_id", source)
	v.positiveMoney("amount", amount)
}

// TransferCompleted (transfer.completed) says a transfer saga moved Amount
// from the source account to the target account.
type TransferCompleted struct {
	TransferID      string `json:"transfer_id"`
	SourceAccountID string `json:"source_account_id"`
	TargetAccountID string `json:"target_account_id"`
	Amount          Money  `json:"amount"`
}

// Validate checks the ids, distinct accounts and a positive amount.
func (p TransferCompleted) Validate() error {
	var v validator
	validateTransfer(&v, p.TransferID, p.SourceAccountID, p.TargetAccountID, p.Amount)
	return v.err()
}

// TransferFailed (transfer.failed) says a transfer saga ended without moving
// money, after refunding anything it had withdrawn.
type TransferFailed struct {
	TransferID      string `json:"transfer_id"`
	SourceAccountID string `json:"source_account_id"`
	TargetAccountID string `json:"target_account_id"`
	Amount          Money  `json:"amount"`
	// Reason says why, such as "insufficient_funds".
	Reason string `json:"reason"`
}

// Validate checks the ids, distinct accounts, a positive amount and a reason.
func (p TransferFailed) Validate() error {
	var v validator
	validateTransfer(&v, p.TransferID, p.SourceAccountID, p.TargetAccountID, p.Amount)
	v.text("reason", p.Reason, true)
	return v.err()
}
