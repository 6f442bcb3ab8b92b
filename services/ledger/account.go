package ledger

import (
	"encoding/json"
	"fmt"

	"github.com/sagaflow/sagaflow/contract"
)

// apply folds one stream event into the state. It fails on an event out of
// order or that a valid stream cannot contain, which means a corrupt store.
func apply(a contract.Account, e contract.AccountEvent) (contract.Account, error) {
	if e.Version != a.Version+1 {
		return a, fmt.Errorf("account %s: event version %d follows version %d", e.AccountID, e.Version, a.Version)
	}
	if e.Type != contract.AccountEventOpened && !a.Exists() {
		return a, fmt.Errorf("account %s: %s before account.opened", e.AccountID, e.Type)
	}
	switch e.Type {
	case contract.AccountEventOpened:
		var d contract.AccountOpened
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return a, fmt.Errorf("account %s version %d: %w", e.AccountID, e.Version, err)
		}
		a = contract.Account{ID: e.AccountID, Owner: d.Owner, Currency: d.Currency, Balance: d.InitialBalance, Status: contract.AccountOpen}
	case contract.AccountEventDeposited, contract.AccountEventRefunded, contract.AccountEventWithdrawn:
		var d contract.FundsMoved
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return a, fmt.Errorf("account %s version %d: %w", e.AccountID, e.Version, err)
		}
		if e.Type == contract.AccountEventWithdrawn {
			a.Balance -= d.Amount
		} else {
			a.Balance += d.Amount
		}
	case contract.AccountEventFrozen:
		a.Status = contract.AccountFrozen
	case contract.AccountEventClosed:
		a.Status = contract.AccountClosed
	default:
		return a, fmt.Errorf("account %s version %d: unknown event type %q", e.AccountID, e.Version, e.Type)
	}
	a.Version = e.Version
	return a, nil
}

// Fold applies events in order to a starting state.
func Fold(a contract.Account, evs []contract.AccountEvent) (contract.Account, error) {
	for _, e := range evs {
		var err error
		if a, err = apply(a, e); err != nil {
			return a, err
		}
	}
	return a, nil
}
