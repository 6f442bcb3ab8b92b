package ledger

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sagaflow/sagaflow/events"
)

// Types of the events in an account's stream. The funds.* ones share their
// names with the catalog events the ledger publishes; the account.* ones are
// the ledger's internal records and are never published.
const (
	EventAccountOpened  = "account.opened"
	EventFundsDeposited = events.TypeFundsDeposited
	EventFundsWithdrawn = events.TypeFundsWithdrawn
	EventFundsRefunded  = events.TypeFundsRefunded
	EventAccountFrozen  = "account.frozen"
	EventAccountClosed  = "account.closed"
)

// Status is the life-cycle state of an account.
type Status string

// The states of an account.
const (
	// StatusOpen accepts every command.
	StatusOpen Status = "open"
	// StatusFrozen refuses deposits and withdrawals but takes refunds.
	StatusFrozen Status = "frozen"
	// StatusClosed refuses everything but refunds.
	StatusClosed Status = "closed"
)

// AccountOpened is the data of an account.opened stream event.
type AccountOpened struct {
	Owner          string `json:"owner,omitempty"`
	Currency       string `json:"currency"`
	InitialBalance int64  `json:"initial_balance"`
}

// FundsMoved is the data of a funds.deposited, funds.withdrawn or
// funds.refunded stream event: the amount in the account's currency and the
// balance after it.
type FundsMoved struct {
	Amount     int64  `json:"amount"`
	Balance    int64  `json:"balance"`
	TransferID string `json:"transfer_id,omitempty"`
}

// StatusChanged is the data of an account.frozen or account.closed stream
// event.
type StatusChanged struct {
	Reason string `json:"reason,omitempty"`
}

// StreamEvent is one stored event of an account's stream, with what caused it.
type StreamEvent struct {
	// AccountID is the stream id.
	AccountID string `json:"account_id"`
	// Version is the event's position in the stream, starting at 1.
	Version int64 `json:"version"`
	// Type is one of the Event* constants.
	Type string `json:"type"`
	// Data is the JSON of AccountOpened, FundsMoved or StatusChanged.
	Data json.RawMessage `json:"data"`
	// CommandID is the id of the command that caused the event.
	CommandID string `json:"command_id"`
	// CorrelationID is the correlation id (the saga) of that command.
	CorrelationID string `json:"correlation_id,omitempty"`
	// RecordedAt is when the event was appended.
	RecordedAt time.Time `json:"recorded_at"`
}

// Account is the state of an account: the fold of its stream.
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
	Status Status `json:"status"`
	// Version is the version of the last event folded in; 0 for an account
	// that does not exist.
	Version int64 `json:"version"`
}

// Exists reports whether the account was opened.
func (a Account) Exists() bool { return a.Version > 0 }

// Money returns the balance as Money.
func (a Account) Money() events.Money { return events.Money{Amount: a.Balance, Currency: a.Currency} }

// Apply folds one stream event into the state. It fails on an event out of
// order or that a valid stream cannot contain, which means a corrupt store.
func (a Account) Apply(e StreamEvent) (Account, error) {
	if e.Version != a.Version+1 {
		return a, fmt.Errorf("account %s: event version %d follows version %d", e.AccountID, e.Version, a.Version)
	}
	if e.Type != EventAccountOpened && !a.Exists() {
		return a, fmt.Errorf("account %s: %s before account.opened", e.AccountID, e.Type)
	}
	switch e.Type {
	case EventAccountOpened:
		var d AccountOpened
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return a, fmt.Errorf("account %s version %d: %w", e.AccountID, e.Version, err)
		}
		a = Account{ID: e.AccountID, Owner: d.Owner, Currency: d.Currency, Balance: d.InitialBalance, Status: StatusOpen}
	case EventFundsDeposited, EventFundsRefunded, EventFundsWithdrawn:
		var d FundsMoved
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return a, fmt.Errorf("account %s version %d: %w", e.AccountID, e.Version, err)
		}
		if e.Type == EventFundsWithdrawn {
			a.Balance -= d.Amount
		} else {
			a.Balance += d.Amount
		}
	case EventAccountFrozen:
		a.Status = StatusFrozen
	case EventAccountClosed:
		a.Status = StatusClosed
	default:
		return a, fmt.Errorf("account %s version %d: unknown event type %q", e.AccountID, e.Version, e.Type)
	}
	a.Version = e.Version
	return a, nil
}

// Fold applies events in order to a starting state.
func Fold(a Account, evs []StreamEvent) (Account, error) {
	for _, e := range evs {
		var err error
		if a, err = a.Apply(e); err != nil {
			return a, err
		}
	}
	return a, nil
}
