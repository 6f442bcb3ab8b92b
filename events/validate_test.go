package events_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

func orderPlaced(mutate func(*events.OrderPlaced)) events.OrderPlaced {
	p := samples[events.TypeOrderPlaced].(events.OrderPlaced)
	p.Lines = append([]events.OrderLine(nil), p.Lines...)
	mutate(&p)
	return p
}

func manyStockLines(n int) []events.StockLine {
	lines := make([]events.StockLine, n)
	for i := range lines {
		lines[i] = events.StockLine{SKU: "s", Quantity: 1}
	}
	return lines
}

func TestValidateNamesTheFailingField(t *testing.T) {
	tests := []struct {
		name    string
		payload events.Payload
		want    string // the first problem, "field: problem"
	}{
		{name: "money zero amount", payload: events.Money{Amount: 0, Currency: "EUR"}, want: "amount: must be positive"},
		{name: "money negative amount", payload: events.Money{Amount: -5, Currency: "EUR"}, want: "amount: must be positive"},
		{name: "money lower-case currency", payload: events.Money{Amount: 5, Currency: "eur"}, want: "currency: must be three upper-case letters (ISO 4217)"},
		{name: "money long currency", payload: events.Money{Amount: 5, Currency: "EURO"}, want: "currency: must be three upper-case letters (ISO 4217)"},
		{name: "money missing currency", payload: events.Money{Amount: 5}, want: "currency: required"},

		{name: "order empty id", payload: orderPlaced(func(p *events.OrderPlaced) { p.OrderID = "" }), want: "order_id: required"},
		{name: "order id too long", payload: orderPlaced(func(p *events.OrderPlaced) { p.OrderID = strings.Repeat("é", events.MaxIDLength+1) }), want: "order_id: must be at most 200 characters, got 201"},
		{name: "order id with control character", payload: orderPlaced(func(p *events.OrderPlaced) { p.OrderID = "o\n1" }), want: "order_id: must not contain control characters"},
		{name: "order id invalid UTF-8", payload: orderPlaced(func(p *events.OrderPlaced) { p.OrderID = "o\xff" }), want: "order_id: must be valid UTF-8"},
		{name: "order customer is merchant", payload: orderPlaced(func(p *events.OrderPlaced) { p.MerchantID = p.CustomerID }), want: "merchant_id: must differ from customer_id"},
		{name: "order no lines", payload: orderPlaced(func(p *events.OrderPlaced) { p.Lines = nil }), want: "lines: must have at least one line"},
		{name: "order too many lines", payload: orderPlaced(func(p *events.OrderPlaced) {
			p.Lines = make([]events.OrderLine, events.MaxLines+1)
		}), want: "lines: must have at most 1000 lines, got 1001"},
		{name: "order line zero quantity", payload: orderPlaced(func(p *events.OrderPlaced) { p.Lines[1].Quantity = 0 }), want: "lines[1].quantity: must be positive"},
		{name: "order line negative price", payload: orderPlaced(func(p *events.OrderPlaced) { p.Lines[0].UnitPrice = -1 }), want: "lines[0].unit_price: must be positive"},
		{name: "order line empty sku", payload: orderPlaced(func(p *events.OrderPlaced) { p.Lines[1].SKU = "" }), want: "lines[1].sku: required"},
		{name: "order total differs from lines", payload: orderPlaced(func(p *events.OrderPlaced) { p.Total = 849 }), want: "total: must equal the sum of the lines (850), got 849"},
		{name: "order zero total", payload: orderPlaced(func(p *events.OrderPlaced) { p.Total = 0 }), want: "total: must be positive"},
		{name: "order line overflows", payload: orderPlaced(func(p *events.OrderPlaced) {
			p.Lines = []events.OrderLine{{SKU: "gold", Quantity: math.MaxInt64 / 2, UnitPrice: 3}}
			p.Total = math.MaxInt64
		}), want: "lines[0].unit_price: quantity × unit_price overflows the total"},
		{name: "order sum overflows", payload: orderPlaced(func(p *events.OrderPlaced) {
			p.Lines = []events.OrderLine{{SKU: "a", Quantity: 1, UnitPrice: math.MaxInt64}, {SKU: "b", Quantity: 1, UnitPrice: 1}}
			p.Total = math.MaxInt64
		}), want: "lines[1].unit_price: quantity × unit_price overflows the total"},
		{name: "order bad currency", payload: orderPlaced(func(p *events.OrderPlaced) { p.Currency = "E1R" }), want: "currency: must be three upper-case letters (ISO 4217)"},

		{name: "order cancelled without reason", payload: events.OrderCancelled{OrderID: "o-1"}, want: "reason: required"},
		{name: "cancel requested without order", payload: events.OrderCancelRequested{}, want: "order_id: required"},
		{name: "reserved without lines", payload: events.InventoryReserved{ReservationID: "r-1"}, want: "lines: must have at least one line"},
		{name: "reserved line negative quantity", payload: events.InventoryReserved{ReservationID: "r-1", Lines: []events.StockLine{{SKU: "a", Quantity: -1}}}, want: "lines[0].quantity: must be positive"},
		{name: "reservation failed without reason", payload: events.InventoryReservationFailed{ReservationID: "r-1"}, want: "reason: required"},
		{name: "reservation failed bad line", payload: events.InventoryReservationFailed{ReservationID: "r-1", Reason: "x", FailedLines: []events.StockLine{{Quantity: 1}}}, want: "failed_lines[0].sku: required"},
		{name: "committed without reservation", payload: events.InventoryCommitted{Lines: manyStockLines(1)}, want: "reservation_id: required"},
		{name: "released with unknown reason", payload: events.InventoryReleased{ReservationID: "r-1", Reason: "lost", Lines: manyStockLines(1)}, want: `reason: must be "released", "expired" or "compensated"`},
		{name: "reserve too many lines", payload: events.InventoryReserve{ReservationID: "r-1", Lines: manyStockLines(events.MaxLines + 1)}, want: "lines: must have at most 1000 lines, got 1001"},

		{name: "withdrawn zero amount", payload: events.FundsWithdrawn{AccountID: "a", Amount: eur(0), Balance: eur(0)}, want: "amount.amount: must be positive"},
		{name: "deposited negative balance", payload: events.FundsDeposited{AccountID: "a", Amount: eur(1), Balance: eur(-1)}, want: "balance.amount: must not be negative"},
		{name: "refunded balance in another currency", payload: events.FundsRefunded{AccountID: "a", Amount: eur(1), Balance: events.Money{Amount: 1, Currency: "USD"}}, want: "balance.currency: must be EUR like the amount, got USD"},
		{name: "transfer to itself", payload: events.TransferCompleted{TransferID: "t", SourceAccountID: "a", TargetAccountID: "a", Amount: eur(1)}, want: "target_account_id: must differ from source_account_id"},
		{name: "transfer failed without reason", payload: events.TransferFailed{TransferID: "t", SourceAccountID: "a", TargetAccountID: "b", Amount: eur(1)}, want: "reason: required"},

		{name: "open negative balance", payload: events.LedgerOpen{AccountID: "a", Currency: "EUR", InitialBalance: -1}, want: "initial_balance: must not be negative"},
		{name: "withdraw bad currency", payload: events.LedgerWithdraw{AccountID: "a", Amount: events.Money{Amount: 1, Currency: "€"}}, want: "amount.currency: must be three upper-case letters (ISO 4217)"},
		{name: "deposit without account", payload: events.LedgerDeposit{Amount: eur(1)}, want: "account_id: required"},
		{name: "refund zero", payload: events.LedgerRefund{AccountID: "a", Amount: eur(0)}, want: "amount.amount: must be positive"},
		{name: "freeze without account", payload: events.LedgerFreeze{}, want: "account_id: required"},
		{name: "close without account", payload: events.LedgerClose{}, want: "account_id: required"},
		{name: "restock zero", payload: events.InventoryRestock{SKU: "a"}, want: "quantity: must be positive"},
		{name: "release without reason", payload: events.InventoryRelease{ReservationID: "r-1"}, want: "reason: required"},
		{name: "commit without reservation", payload: events.InventoryCommit{}, want: "reservation_id: required"},

		{name: "reply unknown status", payload: events.Reply{CommandID: "c", CommandType: events.CmdLedgerOpen, Status: "maybe"}, want: `status: must be "accepted" or "rejected"`},
		{name: "reply missing status", payload: events.Reply{CommandID: "c", CommandType: events.CmdLedgerOpen}, want: "status: required"},
		{name: "reply rejected without reason", payload: events.Reply{CommandID: "c", CommandType: events.CmdLedgerOpen, Status: events.ReplyRejected}, want: "reason: required"},
		{name: "reply reason not a code", payload: events.Reply{CommandID: "c", CommandType: events.CmdLedgerOpen, Status: events.ReplyRejected, Reason: "Not enough money"}, want: `reason: must be a lower-case code of at most 64 characters like "insufficient_funds"`},
		{name: "reply to an event type", payload: events.Reply{CommandID: "c", CommandType: events.TypeFundsWithdrawn, Status: events.ReplyAccepted}, want: `command_type: must be a command type, got "funds.withdrawn"`},
		{name: "reply invalid result", payload: events.Reply{CommandID: "c", CommandType: events.CmdLedgerOpen, Status: events.ReplyAccepted, Result: json.RawMessage(`{`)}, want: "result: must be valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.payload.Validate()
			require.Error(t, err)
			problems := events.FieldErrors(err)
			require.NotEmpty(t, problems, "%v has no field errors", err)
			require.Equal(t, tt.want, problems[0].Error())
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := events.TransferCompleted{}.Validate()
	var fields []string
	for _, fe := range events.FieldErrors(err) {
		fields = append(fields, fe.Field)
	}
	require.Equal(t, []string{"transfer_id", "source_account_id", "target_account_id", "amount.amount", "amount.currency"}, fields)
}

func TestValidPayloadsPass(t *testing.T) {
	tests := []struct {
		name    string
		payload events.Payload
	}{
		{name: "money", payload: eur(1)},
		{name: "rejected reply with reason", payload: events.Reply{CommandID: "c", CommandType: events.CmdLedgerWithdraw, Status: events.ReplyRejected, Reason: events.ReasonInsufficientFunds, Message: "balance 0 EUR\ncannot cover 5 EUR"}},
		{name: "open with zero balance and no owner", payload: events.LedgerOpen{AccountID: "a", Currency: "USD"}},
		{name: "reservation failed without lines", payload: events.InventoryReservationFailed{ReservationID: "r", Reason: events.ReasonUnknownSKU}},
		{name: "order with a thousand lines", payload: func() events.OrderPlaced {
			p := events.OrderPlaced{OrderID: "o", CustomerID: "c", MerchantID: "m", Currency: "EUR"}
			for range events.MaxLines {
				p.Lines = append(p.Lines, events.OrderLine{SKU: "s", Quantity: 2, UnitPrice: 3})
			}
			p.Total = 6 * events.MaxLines
			return p
		}()},
		{name: "order total at the int64 limit", payload: events.OrderPlaced{OrderID: "o", CustomerID: "c", MerchantID: "m", Currency: "EUR",
			Lines: []events.OrderLine{{SKU: "a", Quantity: 1, UnitPrice: math.MaxInt64 - 1}, {SKU: "b", Quantity: 1, UnitPrice: 1}}, Total: math.MaxInt64}},
		{name: "id of 200 multi-byte characters", payload: events.OrderConfirmed{OrderID: strings.Repeat("é", events.MaxIDLength)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.payload.Validate())
		})
	}
	for typ, p := range samples {
		require.NoError(t, p.Validate(), typ)
	}
}

func TestMoneyString(t *testing.T) {
	require.Equal(t, "1050 EUR", eur(1050).String())
}

func TestOrderOutcomeDetailsAreValidatedAsOrderPlaced(t *testing.T) {
	details := &events.OrderDetails{CustomerID: "c", MerchantID: "m", Currency: "EUR", Total: 300,
		Lines: []events.OrderLine{{SKU: "apple", Quantity: 2, UnitPrice: 150}}}
	require.NoError(t, events.OrderConfirmed{OrderID: "o-1", Details: details}.Validate())
	require.NoError(t, events.OrderConfirmed{OrderID: "o-1"}.Validate(), "details are optional")

	bad := *details
	bad.Total = 299
	err := events.OrderCancelled{OrderID: "o-1", Reason: "x", Details: &bad}.Validate()
	require.ErrorContains(t, err, "details.total: must equal the sum of the lines")
	err = events.OrderConfirmed{OrderID: "o-1", Details: &events.OrderDetails{}}.Validate()
	require.ErrorContains(t, err, "details.customer_id: required")
}
