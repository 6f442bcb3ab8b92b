package events

import "encoding/json"

// Type names of the commands: imperative instructions sent to one service's
// queue, each answered by a Reply.
const (
	CmdLedgerOpen       = "ledger.open"
	CmdLedgerDeposit    = "ledger.deposit"
	CmdLedgerWithdraw   = "ledger.withdraw"
	CmdLedgerRefund     = "ledger.refund"
	CmdLedgerFreeze     = "ledger.freeze"
	CmdLedgerClose      = "ledger.close"
	CmdInventoryRestock = "inventory.restock"
	CmdInventoryReserve = "inventory.reserve"
	CmdInventoryRelease = "inventory.release"
	CmdInventoryCommit  = "inventory.commit"
)

// TypeCommandReplied is the type of the Reply every command is answered with.
const TypeCommandReplied = "command.replied"

// LedgerOpen (ledger.open) opens an account in one currency.
type LedgerOpen struct {
	AccountID string `json:"account_id"`
	Currency  string `json:"currency"`
	// Owner names who holds the account; optional.
	Owner string `json:"owner,omitempty"`
	// InitialBalance in minor units of Currency; zero or more.
	InitialBalance int64 `json:"initial_balance"`
}

// Validate checks the account id, the currency and a non-negative balance.
func (p LedgerOpen) Validate() error {
	var v validator
	v.id("account_id", p.AccountID)
	v.currency("currency", p.Currency)
	v.text("owner", p.Owner, false)
	if p.InitialBalance < 0 {
		v.add("initial_balance", "must not be negative")
	}
	return v.err()
}

func validateMovement(accountID string, amount Money, transferID string) error {
	var v validator
	v.id("account_id", accountID)
	v.positiveMoney("amount", amount)
	v.optionalID("transfer_id", transferID)
	return v.err()
}

// LedgerDeposit (ledger.deposit) adds Amount to an account.
type LedgerDeposit struct {
	AccountID string `json:"account_id"`
	Amount    Money  `json:"amount"`
	// TransferID names the transfer this is part of, if any.
	TransferID string `json:"transfer_id,omitempty"`
}

// Validate checks the account id and a positive amount.
func (p LedgerDeposit) Validate() error {
	return validateMovement(p.AccountID, p.Amount, p.TransferID)
}

// LedgerWithdraw (ledger.withdraw) takes Amount from an account if its
// balance covers it.
type LedgerWithdraw struct {
	AccountID string `json:"account_id"`
	Amount    Money  `json:"amount"`
	// TransferID names the transfer this is part of, if any.
	TransferID string `json:"transfer_id,omitempty"`
}

// Validate checks the account id and a positive amount.
func (p LedgerWithdraw) Validate() error {
	return validateMovement(p.AccountID, p.Amount, p.TransferID)
}

// LedgerRefund (ledger.refund) gives back Amount that an earlier withdrawal
// took; it is a saga's compensation of LedgerWithdraw.
type LedgerRefund struct {
	AccountID string `json:"account_id"`
	Amount    Money  `json:"amount"`
	// TransferID names the transfer this is part of, if any.
	TransferID string `json:"transfer_id,omitempty"`
}

// Validate checks the account id and a positive amount.
func (p LedgerRefund) Validate() error {
	return validateMovement(p.AccountID, p.Amount, p.TransferID)
}

// LedgerFreeze (ledger.freeze) stops every movement on an account.
type LedgerFreeze struct {
	AccountID string `json:"account_id"`
	Reason    string `json:"reason,omitempty"`
}

// Validate checks the account id and an optional reason.
func (p LedgerFreeze) Validate() error {
	var v validator
	v.id("account_id", p.AccountID)
	v.text("reason", p.Reason, false)
	return v.err()
}

// LedgerClose (ledger.close) closes an account for good.
type LedgerClose struct {
	AccountID string `json:"account_id"`
	Reason    string `json:"reason,omitempty"`
}

// Validate checks the account id and an optional reason.
func (p LedgerClose) Validate() error {
	var v validator
	v.id("account_id", p.AccountID)
	v.text("reason", p.Reason, false)
	return v.err()
}

// InventoryRestock (inventory.restock) adds Quantity to a sku's on-hand stock,
// creating the sku if it is new.
type InventoryRestock struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// Validate checks the sku and a positive quantity.
func (p InventoryRestock) Validate() error {
	var v validator
	v.id("sku", p.SKU)
	v.positive("quantity", p.Quantity)
	return v.err()
}

// InventoryReserve (inventory.reserve) holds every line or none of them.
type InventoryReserve struct {
	ReservationID string      `json:"reservation_id"`
	OrderID       string      `json:"order_id,omitempty"`
	Lines         []StockLine `json:"lines"`
}

// Validate checks the ids and between 1 and MaxLines lines.
func (p InventoryReserve) Validate() error {
	var v validator
	v.id("reservation_id", p.ReservationID)
	v.optionalID("order_id", p.OrderID)
	v.stockLines("lines", p.Lines, true)
	return v.err()
}

// InventoryRelease (inventory.release) gives a held reservation back to
// available stock.
type InventoryRelease struct {
	ReservationID string `json:"reservation_id"`
	// Reason is ReleaseReasonReleased, ReleaseReasonExpired or
	// ReleaseReasonCompensated; the inventory.released event carries it on.
	Reason string `json:"reason"`
}

// Validate checks the reservation id and the reason.
func (p InventoryRelease) Validate() error {
	var v validator
	v.id("reservation_id", p.ReservationID)
	v.releaseReason("reason", p.Reason)
	return v.err()
}

// InventoryCommit (inventory.commit) turns a held reservation into a sale.
type InventoryCommit struct {
	ReservationID string `json:"reservation_id"`
}

// Validate checks the reservation id.
func (p InventoryCommit) Validate() error {
	var v validator
	v.id("reservation_id", p.ReservationID)
	return v.err()
}

// ReplyStatus is the outcome of a command: ReplyAccepted or ReplyRejected.
type ReplyStatus string

// The two outcomes of a command.
const (
	// ReplyAccepted: the service applied the command.
	ReplyAccepted ReplyStatus = "accepted"
	// ReplyRejected: a business rule refused it; Reply.Reason says which.
	ReplyRejected ReplyStatus = "rejected"
)

// Machine-readable reasons a service rejects a command with, in Reply.Reason.
const (
	ReasonInsufficientFunds  = "insufficient_funds"
	ReasonAccountClosed      = "account_closed"
	ReasonAccountFrozen      = "account_frozen"
	ReasonAccountExists      = "account_exists"
	ReasonUnknownAccount     = "unknown_account"
	ReasonCurrencyMismatch   = "currency_mismatch"
	ReasonInvalidAmount      = "invalid_amount"
	ReasonUnknownSKU         = "unknown_sku"
	ReasonInsufficientStock  = "insufficient_stock"
	ReasonUnknownReservation = "unknown_reservation"
	ReasonInvalidQuantity    = "invalid_quantity"
	ReasonReservationNotHeld = "reservation_not_held"
)

// Reply (command.replied) answers one command, sent to the command's reply-to
// queue with its correlation id. A rejection is a business outcome, not an
// error: the command was understood and refused.
type Reply struct {
	// CommandID is the id of the command's envelope.
	CommandID string `json:"command_id"`
	// CommandType is the command's type, such as "ledger.withdraw".
	CommandType string      `json:"command_type"`
	Status      ReplyStatus `json:"status"`
	// Reason is a machine-readable code (see the Reason constants), required
	// when Status is ReplyRejected.
	Reason string `json:"reason,omitempty"`
	// Message explains the outcome to a person; optional.
	Message string `json:"message,omitempty"`
	// Result is an optional command-specific JSON result, such as a balance.
	Result json.RawMessage `json:"result,omitempty"`
}

// Validate checks the command id and type, the status, and that a rejection
// names its reason.
func (p Reply) Validate() error {
	var v validator
	v.id("command_id", p.CommandID)
	if p.CommandType == "" {
		v.add("command_type", "required")
	} else if !IsCommand(p.CommandType) {
		v.addf("command_type", "must be a command type, got %q", p.CommandType)
	}
	switch p.Status {
	case ReplyAccepted, ReplyRejected:
	case "":
		v.add("status", "required")
	default:
		v.addf("status", "must be %q or %q", ReplyAccepted, ReplyRejected)
	}
	v.code("reason", p.Reason, p.Status == ReplyRejected)
	v.text("message", p.Message, false)
	if len(p.Result) > 0 && !json.Valid(p.Result) {
		v.add("result", "must be valid JSON")
	}
	return v.err()
}

// Accepted reports whether the command was applied.
func (p Reply) Accepted() bool { return p.Status == ReplyAccepted }
