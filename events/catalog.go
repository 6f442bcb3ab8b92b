package events

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The catalog of the system's types, the only place they are registered.
// Adding a type is one Register line here plus its payload struct. Queries
// are registered as commands: they travel the same way and are answered by
// a Reply.
func init() {
	Register[OrderPlaced](KindEvent, TypeOrderPlaced, 2, UpcastOrderPlacedV1)
	Register[OrderConfirmed](KindEvent, TypeOrderConfirmed, 1)
	Register[OrderCancelled](KindEvent, TypeOrderCancelled, 1)
	Register[OrderCancelRequested](KindEvent, TypeOrderCancelRequested, 1)
	Register[InventoryReserved](KindEvent, TypeInventoryReserved, 1)
	Register[InventoryReservationFailed](KindEvent, TypeInventoryReservationFailed, 1)
	Register[InventoryCommitted](KindEvent, TypeInventoryCommitted, 1)
	Register[InventoryReleased](KindEvent, TypeInventoryReleased, 1)
	Register[FundsWithdrawn](KindEvent, TypeFundsWithdrawn, 1)
	Register[FundsDeposited](KindEvent, TypeFundsDeposited, 1)
	Register[FundsRefunded](KindEvent, TypeFundsRefunded, 1)
	Register[TransferCompleted](KindEvent, TypeTransferCompleted, 1)
	Register[TransferFailed](KindEvent, TypeTransferFailed, 1)

	Register[LedgerOpen](KindCommand, CmdLedgerOpen, 1)
	Register[LedgerDeposit](KindCommand, CmdLedgerDeposit, 1)
	Register[LedgerWithdraw](KindCommand, CmdLedgerWithdraw, 1)
	Register[LedgerRefund](KindCommand, CmdLedgerRefund, 1)
	Register[LedgerFreeze](KindCommand, CmdLedgerFreeze, 1)
	Register[LedgerClose](KindCommand, CmdLedgerClose, 1)
	Register[InventoryRestock](KindCommand, CmdInventoryRestock, 1)
	Register[InventoryReserve](KindCommand, CmdInventoryReserve, 1)
	Register[InventoryRelease](KindCommand, CmdInventoryRelease, 1)
	Register[InventoryCommit](KindCommand, CmdInventoryCommit, 1)

	Register[LedgerBalanceQuery](KindCommand, QueryLedgerBalance, 1)
	Register[LedgerStatementQuery](KindCommand, QueryLedgerStatement, 1)
	Register[InventoryStockQuery](KindCommand, QueryInventoryStock, 1)
	Register[InventoryReservationsQuery](KindCommand, QueryInventoryReservations, 1)
	Register[OrdersGetQuery](KindCommand, QueryOrdersGet, 1)
	Register[OrdersListQuery](KindCommand, QueryOrdersList, 1)

	Register[Reply](KindReply, TypeCommandReplied, 1)
}

// UpcastOrderPlacedV1 turns order.placed version 1 data into version 2: the
// field "customer" becomes "customer_id", and the Money object "amount"
// ({"amount": minor units, "currency": code}) becomes "total" and "currency".
// Other fields, known or not, pass through unchanged. A value already present
// under the version 2 name wins over the version 1 one.
func UpcastOrderPlacedV1(data json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("order.placed v1: %w", err)
	}
	if fields == nil {
		return nil, errors.New("order.placed v1: data must be a JSON object")
	}
	if customer, ok := fields["customer"]; ok {
		delete(fields, "customer")
		if _, has := fields["customer_id"]; !has {
			fields["customer_id"] = customer
		}
	}
	if raw, ok := fields["amount"]; ok {
		delete(fields, "amount")
		var amount struct {
			Amount   json.RawMessage `json:"amount"`
			Currency json.RawMessage `json:"currency"`
		}
		if err := json.Unmarshal(raw, &amount); err != nil {
			return nil, fmt.Errorf("order.placed v1: amount: %w", err)
		}
		if _, has := fields["total"]; !has && amount.Amount != nil {
			fields["total"] = amount.Amount
		}
		if _, has := fields["currency"]; !has && amount.Currency != nil {
			fields["currency"] = amount.Currency
		}
	}
	return json.Marshal(fields)
}
