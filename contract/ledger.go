package contract

import (
	"encoding/json"
	"time"

	"github.com/sagaflow/sagaflow/events"
)

// AccountStatus is the life-cycle state of a ledger account.
type AccountStatus string

// The states of a ledger account.
const (
	// AccountOpen accepts every command.
	AccountOpen AccountStatus = "open"
	// AccountFrozen refuses deposits and withdrawals but takes refunds.
	AccountFrozen AccountStatus = "frozen"
	// AccountClosed refuses everything but refunds.
	AccountClosed AccountStatus = "closed"
)

// Account is the state of a ledger account, the fold of its stream: the
// Result of the ledger's replies to its commands and to ledger.balance.
type Account struct {
	// ID is the account id.
	ID string `json:"account_id"`
	// Owner is who holds it.
	Owner string `json:"owner,omitempty"`
	// Currency is the only currency it holds.
	Currency string `json:"currency"`
	// Balance is in minor units of Currency; never negative.
	Balance int64 `json:"balance"`
	// Status is open, frozen or closed.
	Status AccountStatus `json:"status"`
	// Version is the version of the last event folded in; 0 for an account
	// that does not exist.
	Version int64 `json:"version"`
}

// Exists reports whether the account was opened.
func (a Account) Exists() bool { return a.Version > 0 }

// Money returns the balance as Money.
func (a Account) Money() events.Money { return events.Money{Amount: a.Balance, Currency: a.Currency} }

// Types of the events in an account's stream (AccountEvent.Type). The
// funds.* ones share their names with the catalog events the ledger
// publishes; the account.* ones are the ledger's own records and are never
// published.
const (
	// AccountEventOpened (account.opened) carries AccountOpened.
	AccountEventOpened = "account.opened"
	// AccountEventDeposited (funds.deposited) carries FundsMoved.
	AccountEventDeposited = events.TypeFundsDeposited
	// AccountEventWithdrawn (funds.withdrawn) carries FundsMoved.
	AccountEventWithdrawn = events.TypeFundsWithdrawn
	// AccountEventRefunded (funds.refunded) carries FundsMoved.
	AccountEventRefunded = events.TypeFundsRefunded
	// AccountEventFrozen (account.frozen) carries AccountStatusChanged.
	AccountEventFrozen = "account.frozen"
	// AccountEventClosed (account.closed) carries AccountStatusChanged.
	AccountEventClosed = "account.closed"
)

// AccountOpened is the data of an account.opened stream event.
type AccountOpened struct {
	// Owner is who holds the account; optional.
	Owner string `json:"owner,omitempty"`
	// Currency is the account's only currency.
	Currency string `json:"currency"`
	// InitialBalance is in minor units of Currency.
	InitialBalance int64 `json:"initial_balance"`
}

// FundsMoved is the data of a funds.deposited, funds.withdrawn or
// funds.refunded stream event: the amount in the account's currency and the
// balance after it.
type FundsMoved struct {
	// Amount is the positive amount moved, in minor units.
	Amount int64 `json:"amount"`
	// Balance is the account's balance after the move.
	Balance int64 `json:"balance"`
	// TransferID names the transfer the move is part of, if any.
	TransferID string `json:"transfer_id,omitempty"`
}

// AccountStatusChanged is the data of an account.frozen or account.closed
// stream event.
type AccountStatusChanged struct {
	// Reason is why, as the command gave it; optional.
	Reason string `json:"reason,omitempty"`
}

// AccountEvent is one stored event of an account's stream, with what
// caused it.
type AccountEvent struct {
	// AccountID is the stream id.
	AccountID string `json:"account_id"`
	// Version is the event's position in the stream, starting at 1.
	Version int64 `json:"version"`
	// Type is one of the AccountEvent* constants.
	Type string `json:"type"`
	// Data is the JSON of AccountOpened, FundsMoved or AccountStatusChanged.
	Data json.RawMessage `json:"data"`
	// CommandID is the id of the command that caused the event.
	CommandID string `json:"command_id"`
	// CorrelationID is the correlation id (the saga) of that command.
	CorrelationID string `json:"correlation_id,omitempty"`
	// RecordedAt is when the event was appended.
	RecordedAt time.Time `json:"recorded_at"`
}

// AccountStatement is the Result of ledger.statement: an account's state
// and every event of its stream, oldest first.
type AccountStatement struct {
	// Account is the state after the last event.
	Account Account `json:"account"`
	// Events is the whole stream.
	Events []AccountEvent `json:"events"`
}
