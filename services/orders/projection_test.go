package orders_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/orders"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func placedPayload(orderID, customerID string) events.OrderPlaced {
	return events.OrderPlaced{
		OrderID: orderID, CustomerID: customerID, MerchantID: "merchant-1",
		Lines:    []events.OrderLine{{SKU: "sku-1", Quantity: 2, UnitPrice: 150}, {SKU: "sku-2", Quantity: 1, UnitPrice: 100}},
		Currency: "EUR", Total: 400,
	}
}

func mustEnv(t testing.TB, typ string, p events.Payload, id string, when time.Time) events.Envelope {
	t.Helper()
	env, err := events.New(typ, "test", p, events.WithID(id), events.WithTime(when))
	require.NoError(t, err)
	return env
}

// fixture builds the events of one order, each with a readable id.
type fixture struct {
	t       testing.TB
	orderID string
}

func (f fixture) placed(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeOrderPlaced, placedPayload(f.orderID, "cust-1"), id, at(n))
}
func (f fixture) reserved(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeInventoryReserved, events.InventoryReserved{ReservationID: "r-" + f.orderID, OrderID: f.orderID,
		Lines: []events.StockLine{{SKU: "sku-1", Quantity: 2}}}, id, at(n))
}
func (f fixture) committed(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeInventoryCommitted, events.InventoryCommitted{ReservationID: "r-" + f.orderID, OrderID: f.orderID,
		Lines: []events.StockLine{{SKU: "sku-1", Quantity: 2}}}, id, at(n))
}
func (f fixture) released(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeInventoryReleased, events.InventoryReleased{ReservationID: "r-" + f.orderID, OrderID: f.orderID,
		Reason: events.ReleaseReasonCompensated, Lines: []events.StockLine{{SKU: "sku-1", Quantity: 2}}}, id, at(n))
}
func (f fixture) failed(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeInventoryReservationFailed, events.InventoryReservationFailed{ReservationID: "r-" + f.orderID,
		OrderID: f.orderID, Reason: "insufficient_stock", FailedLines: []events.StockLine{{SKU: "sku-1", Quantity: 2}}}, id, at(n))
}
func (f fixture) confirmed(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeOrderConfirmed, events.OrderConfirmed{OrderID: f.orderID}, id, at(n))
}
func (f fixture) confirmedWithDetails(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeOrderConfirmed, events.OrderConfirmed{OrderID: f.orderID,
		Details: placedPayload(f.orderID, "cust-1").Details()}, id, at(n))
}
func (f fixture) cancelled(id string, n int) events.Envelope {
	return mustEnv(f.t, events.TypeOrderCancelled, events.OrderCancelled{OrderID: f.orderID, Reason: "insufficient_funds",
		FailedStep: "payment"}, id, at(n))
}

func apply(t *testing.T, p *orders.Projection, env events.Envelope) bool {
	t.Helper()
	_, payload, err := events.Decode(mustEncode(t, env))
	require.NoError(t, err)
	applied, err := p.Apply(context.Background(), env, payload)
	require.NoError(t, err)
	return applied
}

func mustEncode(t testing.TB, env events.Envelope) []byte {
	t.Helper()
	b, err := env.Encode()
	require.NoError(t, err)
	return b
}

// newProjection builds the projection on db and migrates its schema.
func newProjection(t *testing.T, db *store.DB, cfg orders.Config) *orders.Projection {
	t.Helper()
	p, err := orders.New(db, cfg)
	require.NoError(t, err)
	require.NoError(t, p.Migrate(context.Background()))
	return p
}

func TestProjectionSequences(t *testing.T) {
	type step struct {
		env     func(f fixture) events.Envelope
		applied bool
	}
	ev := func(fn func(f fixture) events.Envelope, applied bool) step { return step{fn, applied} }
	tests := []struct {
		name        string
		steps       []step
		wantStatus  events.OrderStatus
		wantReason  string
		wantStep    string
		wantCreated time.Time
		wantLast    string
		wantLastAt  time.Time
		noDetails   bool
	}{
		{
			name: "in order to confirmed",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, true),
				ev(func(f fixture) events.Envelope { return f.committed("c", 3) }, true),
				ev(func(f fixture) events.Envelope { return f.confirmed("ok", 4) }, true),
			},
			wantStatus: events.OrderStatusConfirmed, wantCreated: at(1), wantLast: "ok", wantLastAt: at(4),
		},
		{
			name: "in order to cancelled after a failed reservation",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.failed("f", 2) }, true),
				ev(func(f fixture) events.Envelope { return f.cancelled("x", 3) }, true),
			},
			wantStatus: events.OrderStatusCancelled, wantReason: "insufficient_funds", wantStep: "payment",
			wantCreated: at(1), wantLast: "x", wantLastAt: at(3),
		},
		{
			name: "duplicated events change nothing",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, false),
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, true),
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, false),
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, false),
			},
			wantStatus: events.OrderStatusReserved, wantCreated: at(1), wantLast: "r", wantLastAt: at(2),
		},
		{
			name: "a duplicate id is not applied even with other data",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.confirmed("p", 5) }, false),
			},
			wantStatus: events.OrderStatusPlaced, wantCreated: at(1), wantLast: "p", wantLastAt: at(1),
		},
		{
			name: "out of order: reserved before placed",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, true),
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
			},
			wantStatus: events.OrderStatusReserved, wantCreated: at(1), wantLast: "r", wantLastAt: at(2),
		},
		{
			name: "only later events: a row without details",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, true),
			},
			wantStatus: events.OrderStatusReserved, wantCreated: at(2), wantLast: "r", wantLastAt: at(2), noDetails: true,
		},
		{
			name: "an order started without order.placed gets its details from order.confirmed",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, true),
				ev(func(f fixture) events.Envelope { return f.confirmedWithDetails("ok", 4) }, true),
			},
			wantStatus: events.OrderStatusConfirmed, wantCreated: at(2), wantLast: "ok", wantLastAt: at(4),
		},
		{
			name: "late placed after cancelled keeps cancelled and fills the details",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.cancelled("x", 3) }, true),
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
			},
			wantStatus: events.OrderStatusCancelled, wantReason: "insufficient_funds", wantStep: "payment",
			wantCreated: at(1), wantLast: "x", wantLastAt: at(3),
		},
		{
			name: "late inventory after confirmed keeps confirmed",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.confirmed("ok", 4) }, true),
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, true),
				ev(func(f fixture) events.Envelope { return f.released("rel", 5) }, true),
			},
			wantStatus: events.OrderStatusConfirmed, wantCreated: at(1), wantLast: "rel", wantLastAt: at(5),
		},
		{
			name: "a terminal status is never overwritten by the other",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.confirmed("ok", 4) }, true),
				ev(func(f fixture) events.Envelope { return f.cancelled("x", 5) }, true),
			},
			wantStatus: events.OrderStatusConfirmed, wantCreated: at(1), wantLast: "x", wantLastAt: at(5),
		},
		{
			name: "an older inventory event is ignored",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.reserved("r", 3) }, true),
				ev(func(f fixture) events.Envelope { return f.released("rel", 2) }, true),
			},
			wantStatus: events.OrderStatusReserved, wantCreated: at(1), wantLast: "r", wantLastAt: at(3),
		},
		{
			name: "a newer release takes the reservation back",
			steps: []step{
				ev(func(f fixture) events.Envelope { return f.placed("p", 1) }, true),
				ev(func(f fixture) events.Envelope { return f.reserved("r", 2) }, true),
				ev(func(f fixture) events.Envelope { return f.released("rel", 3) }, true),
			},
			wantStatus: events.OrderStatusPlaced, wantCreated: at(1), wantLast: "rel", wantLastAt: at(3),
		},
	}
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		p := newProjection(t, db, orders.Config{})
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := fixture{t: t, orderID: fmt.Sprintf("o-%d", i)}
				for j, s := range tt.steps {
					env := s.env(f)
					// Event ids are unique per case, so cases never see each other's.
					env.ID = fmt.Sprintf("%s-%s", f.orderID, env.ID)
					require.Equal(t, s.applied, apply(t, p, env), "step %d (%s %s)", j, env.Type, env.ID)
				}
				got, err := p.Get(context.Background(), f.orderID)
				require.NoError(t, err)
				require.Equal(t, tt.wantStatus, got.Status)
				require.Equal(t, tt.wantReason, got.FailureReason)
				require.Equal(t, tt.wantStep, got.FailedStep)
				require.True(t, tt.wantCreated.Equal(got.CreatedAt), "created %v, want %v", got.CreatedAt, tt.wantCreated)
				require.True(t, tt.wantLastAt.Equal(got.LastEventAt), "last event at %v, want %v", got.LastEventAt, tt.wantLastAt)
				require.Equal(t, f.orderID+"-"+tt.wantLast, got.LastEventID)
				require.False(t, got.UpdatedAt.IsZero())
				if tt.noDetails {
					require.Empty(t, got.CustomerID)
					require.Empty(t, got.Lines)
					return
				}
				placed := placedPayload(f.orderID, "cust-1")
				require.Equal(t, placed.CustomerID, got.CustomerID)
				require.Equal(t, placed.MerchantID, got.MerchantID)
				require.Equal(t, placed.Lines, got.Lines)
				require.Equal(t, placed.Total, got.Total)
				require.Equal(t, placed.Currency, got.Currency)
			})
		}
	})
}

func TestProjectionIgnoresEventsWithoutOrder(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		p := newProjection(t, db, orders.Config{})
		reserved := mustEnv(t, events.TypeInventoryReserved, events.InventoryReserved{ReservationID: "r-1",
			Lines: []events.StockLine{{SKU: "sku-1", Quantity: 1}}}, "e1", at(1))
		require.False(t, apply(t, p, reserved))
		withdrawn := mustEnv(t, events.TypeFundsWithdrawn, events.FundsWithdrawn{AccountID: "a",
			Amount: events.Money{Amount: 1, Currency: "EUR"}, Balance: events.Money{Currency: "EUR"}}, "e2", at(1))
		require.False(t, apply(t, p, withdrawn))
		_, err := p.Get(context.Background(), "r-1")
		require.ErrorIs(t, err, orders.ErrUnknownOrder)
	})
}

// TestProjectionConcurrentFirstEvents applies the first events of many
// orders from several goroutines at once: the two first writers of one
// order's row must both be applied.
func TestProjectionConcurrentFirstEvents(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		p := newProjection(t, db, orders.Config{})
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			f := fixture{t: t, orderID: fmt.Sprintf("c-%d", i)}
			for _, env := range []events.Envelope{f.placed(f.orderID+"-p", 1), f.reserved(f.orderID+"-r", 2)} {
				_, payload, err := events.Decode(mustEncode(t, env))
				require.NoError(t, err)
				wg.Go(func() {
					_, err := p.Apply(context.Background(), env, payload)
					errs <- err
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for i := range n {
			got, err := p.Get(context.Background(), fmt.Sprintf("c-%d", i))
			require.NoError(t, err)
			require.Equal(t, events.OrderStatusReserved, got.Status)
			require.Equal(t, "cust-1", got.CustomerID)
		}
	})
}

func TestProjectionList(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		p := newProjection(t, db, orders.Config{})
		// Orders a1..a5 of customer alice placed at 1..5 s, b1 of bob; a2 is
		// confirmed and a4 cancelled.
		for i := 1; i <= 5; i++ {
			id := fmt.Sprintf("a%d", i)
			apply(t, p, mustEnv(t, events.TypeOrderPlaced, placedPayload(id, "alice"), id+"-p", at(i)))
		}
		apply(t, p, mustEnv(t, events.TypeOrderPlaced, placedPayload("b1", "bob"), "b1-p", at(9)))
		apply(t, p, mustEnv(t, events.TypeOrderConfirmed, events.OrderConfirmed{OrderID: "a2"}, "a2-ok", at(10)))
		apply(t, p, mustEnv(t, events.TypeOrderCancelled, events.OrderCancelled{OrderID: "a4", Reason: "changed_mind"}, "a4-x", at(10)))

		ids := func(os []contract.OrderRecord) []string {
			out := []string{}
			for _, o := range os {
				out = append(out, o.OrderID)
			}
			return out
		}
		tests := []struct {
			name string
			q    events.OrdersListQuery
			want []string
		}{
			{name: "newest first", q: events.OrdersListQuery{CustomerID: "alice"}, want: []string{"a5", "a4", "a3", "a2", "a1"}},
			{name: "limit", q: events.OrdersListQuery{CustomerID: "alice", Limit: 2}, want: []string{"a5", "a4"}},
			{name: "status filter", q: events.OrdersListQuery{CustomerID: "alice", Status: events.OrderStatusPlaced}, want: []string{"a5", "a3", "a1"}},
			{name: "confirmed", q: events.OrdersListQuery{CustomerID: "alice", Status: events.OrderStatusConfirmed}, want: []string{"a2"}},
			{name: "other customer", q: events.OrdersListQuery{CustomerID: "bob"}, want: []string{"b1"}},
			{name: "unknown customer", q: events.OrdersListQuery{CustomerID: "carol"}, want: []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := p.List(context.Background(), tt.q)
				require.NoError(t, err)
				require.Equal(t, tt.want, ids(got))
			})
		}
		_, err := p.List(context.Background(), events.OrdersListQuery{CustomerID: "alice", Limit: events.MaxOrdersListLimit + 1})
		require.ErrorContains(t, err, "limit")
	})
}

func TestListQueryValidate(t *testing.T) {
	tests := []struct {
		name string
		q    events.OrdersListQuery
		want []string
	}{
		{name: "minimal", q: events.OrdersListQuery{CustomerID: "c"}},
		{name: "max limit", q: events.OrdersListQuery{CustomerID: "c", Limit: events.MaxOrdersListLimit, Status: events.OrderStatusCancelled}},
		{name: "everything wrong", q: events.OrdersListQuery{Status: "lost", Limit: -1}, want: []string{"customer_id: required", "status: must be", "limit: must be between 0 and 500"}},
		{name: "limit too high", q: events.OrdersListQuery{CustomerID: "c", Limit: 501}, want: []string{"limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	require.ErrorContains(t, events.OrdersGetQuery{}.Validate(), "order_id: required")
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, orders.Config{}.Validate())
	err := orders.Config{ProjectionQueue: "q", QueryQueue: "q", Concurrency: -1, MaxAttempts: -1}.Validate()
	require.ErrorContains(t, err, "must differ")
	require.ErrorContains(t, err, "Concurrency")
	require.ErrorContains(t, err, "MaxAttempts")
}

func TestMigrationsAreIdempotent(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		newProjection(t, db, orders.Config{})
		newProjection(t, db, orders.Config{})
		versions, err := db.AppliedVersions(context.Background(), orders.ServiceName)
		require.NoError(t, err)
		require.Equal(t, []int{1, 2}, versions)
	})
}

// Prune deletes the applied event ids older than the retention and keeps the
// newer ones; a redelivery of a pruned event changes nothing in the order.
func TestPruneDeletesAppliedEventsOlderThanTheRetention(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newProjection(t, db, orders.Config{AppliedEventsRetention: time.Hour})
		f := fixture{t: t, orderID: "o-prune"}
		placed, confirmed := f.placed("e-placed", 0), f.confirmed("e-confirmed", 10)
		require.True(t, apply(t, p, placed))
		require.True(t, apply(t, p, confirmed))
		_, err := db.Exec(ctx, "UPDATE orders_applied_events SET applied_at = ? WHERE event_id = 'e-placed'", time.Now().Add(-2*time.Hour).UnixMicro())
		require.NoError(t, err)
		_, err = db.Exec(ctx, "UPDATE orders_applied_events SET applied_at = ? WHERE event_id = 'e-confirmed'", time.Now().Add(-30*time.Minute).UnixMicro())
		require.NoError(t, err)
		before, err := p.Get(ctx, "o-prune")
		require.NoError(t, err)

		n, err := p.Prune(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.Equal(t, []string{"e-confirmed"}, appliedEventIDs(t, db))

		require.False(t, apply(t, p, confirmed), "a newer event id is still known")
		apply(t, p, placed)
		after, err := p.Get(ctx, "o-prune")
		require.NoError(t, err)
		require.Equal(t, before.Status, after.Status, "a pruned event redelivered does not undo what came after it")
		require.Equal(t, before.LastEventID, after.LastEventID)
	})
}

func TestPruneWithNegativeRetentionKeepsEveryEvent(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newProjection(t, db, orders.Config{AppliedEventsRetention: -1})
		require.True(t, apply(t, p, fixture{t: t, orderID: "o-keep"}.placed("e-1", 0)))
		_, err := db.Exec(ctx, "UPDATE orders_applied_events SET applied_at = ?", time.Now().Add(-365*24*time.Hour).UnixMicro())
		require.NoError(t, err)
		n, err := p.Prune(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, []string{"e-1"}, appliedEventIDs(t, db))
	})
}

func appliedEventIDs(t *testing.T, db *store.DB) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT event_id FROM orders_applied_events ORDER BY event_id")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}
