package events_test

import (
	"encoding/json"

	"github.com/sagaflow/sagaflow/events"
)

func eur(amount int64) events.Money { return events.Money{Amount: amount, Currency: "EUR"} }

// samples holds one valid payload of every catalog type.
var samples = map[string]events.Payload{
	events.TypeOrderPlaced: events.OrderPlaced{
		OrderID: "o-1", CustomerID: "alice", MerchantID: "shop",
		Lines: []events.OrderLine{
			{SKU: "apple", Quantity: 3, UnitPrice: 150},
			{SKU: "pear", Quantity: 2, UnitPrice: 200},
		},
		Currency: "EUR", Total: 850,
	},
	events.TypeOrderConfirmed:       events.OrderConfirmed{OrderID: "o-1"},
	events.TypeOrderCancelled:       events.OrderCancelled{OrderID: "o-1", Reason: "payment rejected: insufficient_funds", FailedStep: "payment"},
	events.TypeOrderCancelRequested: events.OrderCancelRequested{OrderID: "o-1", Reason: "changed my mind"},
	events.TypeInventoryReserved: events.InventoryReserved{
		ReservationID: "r-1", OrderID: "o-1", Lines: []events.StockLine{{SKU: "apple", Quantity: 3}},
	},
	events.TypeInventoryReservationFailed: events.InventoryReservationFailed{
		ReservationID: "r-1", OrderID: "o-1", Reason: events.ReasonInsufficientStock,
		FailedLines: []events.StockLine{{SKU: "pear", Quantity: 2}},
	},
	events.TypeInventoryCommitted: events.InventoryCommitted{
		ReservationID: "r-1", OrderID: "o-1", Lines: []events.StockLine{{SKU: "apple", Quantity: 3}},
	},
	events.TypeInventoryReleased: events.InventoryReleased{
		ReservationID: "r-1", OrderID: "o-1", Reason: events.ReleaseReasonExpired,
		Lines: []events.StockLine{{SKU: "apple", Quantity: 3}},
	},
	events.TypeFundsWithdrawn: events.FundsWithdrawn{AccountID: "alice", Amount: eur(500), Balance: eur(0), TransferID: "t-1"},
	events.TypeFundsDeposited: events.FundsDeposited{AccountID: "bob", Amount: eur(500), Balance: eur(1500), TransferID: "t-1"},
	events.TypeFundsRefunded:  events.FundsRefunded{AccountID: "alice", Amount: eur(500), Balance: eur(500)},
	events.TypeTransferCompleted: events.TransferCompleted{
		TransferID: "t-1", SourceAccountID: "alice", TargetAccountID: "bob", Amount: eur(500),
	},
	events.TypeTransferFailed: events.TransferFailed{
		TransferID: "t-1", SourceAccountID: "alice", TargetAccountID: "bob", Amount: eur(500), Reason: "insufficient_funds",
	},
	events.CmdLedgerOpen:       events.LedgerOpen{AccountID: "alice", Currency: "EUR", Owner: "Alice", InitialBalance: 1000},
	events.CmdLedgerDeposit:    events.LedgerDeposit{AccountID: "bob", Amount: eur(500), TransferID: "t-1"},
	events.CmdLedgerWithdraw:   events.LedgerWithdraw{AccountID: "alice", Amount: eur(500), TransferID: "t-1"},
	events.CmdLedgerRefund:     events.LedgerRefund{AccountID: "alice", Amount: eur(500), TransferID: "t-1"},
	events.CmdLedgerFreeze:     events.LedgerFreeze{AccountID: "alice", Reason: "fraud review"},
	events.CmdLedgerClose:      events.LedgerClose{AccountID: "alice"},
	events.CmdInventoryRestock: events.InventoryRestock{SKU: "apple", Quantity: 100},
	events.CmdInventoryReserve: events.InventoryReserve{
		ReservationID: "r-1", OrderID: "o-1", Lines: []events.StockLine{{SKU: "apple", Quantity: 3}},
	},
	events.CmdInventoryRelease:        events.InventoryRelease{ReservationID: "r-1", Reason: events.ReleaseReasonCompensated},
	events.CmdInventoryCommit:         events.InventoryCommit{ReservationID: "r-1"},
	events.QueryLedgerBalance:         events.LedgerBalanceQuery{AccountID: "alice"},
	events.QueryLedgerStatement:       events.LedgerStatementQuery{AccountID: "alice"},
	events.QueryInventoryStock:        events.InventoryStockQuery{SKUs: []string{"apple", "pear"}},
	events.QueryInventoryReservations: events.InventoryReservationsQuery{OrderID: "o-1"},
	events.QueryOrdersGet:             events.OrdersGetQuery{OrderID: "o-1"},
	events.QueryOrdersList:            events.OrdersListQuery{CustomerID: "alice", Status: events.OrderStatusConfirmed, Limit: 5},
	events.TypeCommandReplied: events.Reply{
		CommandID: "c-1", CommandType: events.CmdLedgerWithdraw, Status: events.ReplyAccepted,
		Result: json.RawMessage(`{"balance":{"amount":0,"currency":"EUR"}}`),
	},
}

// catalogTypes is every type the system defines, with its kind.
var catalogTypes = map[string]events.Kind{
	events.TypeOrderPlaced:                events.KindEvent,
	events.TypeOrderConfirmed:             events.KindEvent,
	events.TypeOrderCancelled:             events.KindEvent,
	events.TypeOrderCancelRequested:       events.KindEvent,
	events.TypeInventoryReserved:          events.KindEvent,
	events.TypeInventoryReservationFailed: events.KindEvent,
	events.TypeInventoryCommitted:         events.KindEvent,
	events.TypeInventoryReleased:          events.KindEvent,
	events.TypeFundsWithdrawn:             events.KindEvent,
	events.TypeFundsDeposited:             events.KindEvent,
	events.TypeFundsRefunded:              events.KindEvent,
	events.TypeTransferCompleted:          events.KindEvent,
	events.TypeTransferFailed:             events.KindEvent,
	events.CmdLedgerOpen:                  events.KindCommand,
	events.CmdLedgerDeposit:               events.KindCommand,
	events.CmdLedgerWithdraw:              events.KindCommand,
	events.CmdLedgerRefund:                events.KindCommand,
	events.CmdLedgerFreeze:                events.KindCommand,
	events.CmdLedgerClose:                 events.KindCommand,
	events.CmdInventoryRestock:            events.KindCommand,
	events.CmdInventoryReserve:            events.KindCommand,
	events.CmdInventoryRelease:            events.KindCommand,
	events.CmdInventoryCommit:             events.KindCommand,
	events.QueryLedgerBalance:             events.KindCommand,
	events.QueryLedgerStatement:           events.KindCommand,
	events.QueryInventoryStock:            events.KindCommand,
	events.QueryInventoryReservations:     events.KindCommand,
	events.QueryOrdersGet:                 events.KindCommand,
	events.QueryOrdersList:                events.KindCommand,
	events.TypeCommandReplied:             events.KindReply,
}
