package events_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

// TestQueriesKeepTheirWireJSON pins the data of every query type: the
// services and their clients are separate processes.
func TestQueriesKeepTheirWireJSON(t *testing.T) {
	want := map[string]string{
		events.QueryLedgerBalance:         `{"account_id":"alice"}`,
		events.QueryLedgerStatement:       `{"account_id":"alice"}`,
		events.QueryInventoryStock:        `{"skus":["apple","pear"]}`,
		events.QueryInventoryReservations: `{"order_id":"o-1"}`,
		events.QueryOrdersGet:             `{"order_id":"o-1"}`,
		events.QueryOrdersList:            `{"customer_id":"alice","status":"confirmed","limit":5}`,
	}
	for typ, data := range want {
		t.Run(typ, func(t *testing.T) {
			info, ok := events.Lookup(typ)
			require.True(t, ok)
			require.Equal(t, events.KindCommand, info.Kind)
			b, err := json.Marshal(samples[typ])
			require.NoError(t, err)
			require.JSONEq(t, data, string(b))
		})
	}
}

func TestQueryValidation(t *testing.T) {
	tests := []struct {
		name    string
		payload events.Payload
		want    string
	}{
		{name: "balance needs an account", payload: events.LedgerBalanceQuery{}, want: "account_id: required"},
		{name: "statement needs an account", payload: events.LedgerStatementQuery{}, want: "account_id: required"},
		{name: "stock of every sku", payload: events.InventoryStockQuery{}},
		{name: "every reservation", payload: events.InventoryReservationsQuery{}},
		{name: "get needs an order", payload: events.OrdersGetQuery{}, want: "order_id: required"},
		{name: "list needs a customer", payload: events.OrdersListQuery{}, want: "customer_id: required"},
		{name: "list of an unknown status", payload: events.OrdersListQuery{CustomerID: "c", Status: "lost"},
			want: `status: must be "placed", "reserved", "confirmed" or "cancelled", got "lost"`},
		{name: "list beyond the limit", payload: events.OrdersListQuery{CustomerID: "c", Limit: events.MaxOrdersListLimit + 1},
			want: "limit: must be between 0 and 500, got 501"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.payload.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestOrdersListLimit(t *testing.T) {
	require.Equal(t, events.DefaultOrdersListLimit, events.OrdersListQuery{}.EffectiveLimit())
	require.Equal(t, 7, events.OrdersListQuery{Limit: 7}.EffectiveLimit())
}

func TestOrderStatus(t *testing.T) {
	for _, s := range []events.OrderStatus{events.OrderStatusPlaced, events.OrderStatusReserved} {
		require.True(t, s.Valid(), s)
		require.False(t, s.Terminal(), s)
	}
	for _, s := range []events.OrderStatus{events.OrderStatusConfirmed, events.OrderStatusCancelled} {
		require.True(t, s.Valid(), s)
		require.True(t, s.Terminal(), s)
	}
	require.False(t, events.OrderStatus("lost").Valid())
}
