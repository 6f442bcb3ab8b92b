package contract_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// TestServiceResultsKeepTheirWireJSON pins the JSON of the services'
// results: other processes, stored snapshots and recorded replies read it,
// so a field is added, never renamed.
func TestServiceResultsKeepTheirWireJSON(t *testing.T) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{
			name:  "account",
			value: contract.Account{ID: "alice", Owner: "Alice", Currency: "EUR", Balance: 1250, Status: contract.AccountFrozen, Version: 3},
			want:  `{"account_id":"alice","owner":"Alice","currency":"EUR","balance":1250,"status":"frozen","version":3}`,
		},
		{
			name: "statement",
			value: contract.AccountStatement{
				Account: contract.Account{ID: "bob", Currency: "EUR", Status: contract.AccountOpen, Version: 1},
				Events: []contract.AccountEvent{{AccountID: "bob", Version: 1, Type: contract.AccountEventOpened,
					Data: json.RawMessage(`{"currency":"EUR","initial_balance":0}`), CommandID: "c-1", RecordedAt: at}},
			},
			want: `{"account":{"account_id":"bob","currency":"EUR","balance":0,"status":"open","version":1},` +
				`"events":[{"account_id":"bob","version":1,"type":"account.opened","data":{"currency":"EUR","initial_balance":0},` +
				`"command_id":"c-1","recorded_at":"2025-03-14T15:09:26Z"}]}`,
		},
		{
			name:  "account opened",
			value: contract.AccountOpened{Owner: "Alice", Currency: "EUR", InitialBalance: 10},
			want:  `{"owner":"Alice","currency":"EUR","initial_balance":10}`,
		},
		{
			name:  "funds moved",
			value: contract.FundsMoved{Amount: 5, Balance: 15, TransferID: "t-1"},
			want:  `{"amount":5,"balance":15,"transfer_id":"t-1"}`,
		},
		{name: "status changed", value: contract.AccountStatusChanged{Reason: "fraud"}, want: `{"reason":"fraud"}`},
		{
			name:  "stock level",
			value: contract.StockLevel{SKU: "apple", OnHand: 7, Reserved: 2, Available: 5},
			want:  `{"sku":"apple","on_hand":7,"reserved":2,"available":5}`,
		},
		{
			name: "reserve result",
			value: contract.InventoryReserveResult{
				Reservation: &contract.StockReservation{ReservationID: "r-1", OrderID: "o-1", State: contract.StockReservationReleased,
					Reason: events.ReleaseReasonExpired, Lines: []events.StockLine{{SKU: "apple", Quantity: 2}}},
				FailedLines: []contract.FailedStockLine{{SKU: "pear", Requested: 3, Available: 1, Reason: events.ReasonInsufficientStock}},
			},
			want: `{"reservation":{"reservation_id":"r-1","order_id":"o-1","state":"released","reason":"expired",` +
				`"lines":[{"sku":"apple","quantity":2}]},` +
				`"failed_lines":[{"sku":"pear","requested":3,"available":1,"reason":"insufficient_stock"}]}`,
		},
		{
			name: "order record",
			value: contract.OrderRecord{OrderID: "o-1", CustomerID: "alice", MerchantID: "shop",
				Lines: []events.OrderLine{{SKU: "apple", Quantity: 1, UnitPrice: 150}}, Total: 150, Currency: "EUR",
				Status: events.OrderStatusCancelled, FailureReason: "insufficient_funds", FailedStep: "payment",
				CreatedAt: at, UpdatedAt: at, LastEventAt: at, LastEventID: "e-1"},
			want: `{"order_id":"o-1","customer_id":"alice","merchant_id":"shop",` +
				`"lines":[{"sku":"apple","quantity":1,"unit_price":150}],"total":150,"currency":"EUR",` +
				`"status":"cancelled","failure_reason":"insufficient_funds","failed_step":"payment",` +
				`"created_at":"2025-03-14T15:09:26Z","updated_at":"2025-03-14T15:09:26Z",` +
				`"last_event_at":"2025-03-14T15:09:26Z","last_event_id":"e-1"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.value)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(b))
		})
	}
}
