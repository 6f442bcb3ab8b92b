package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/command/commandtest"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// newService builds the inventory on db and migrates its schema.
func newService(t testing.TB, db *store.DB, cfg Config) *Service {
	t.Helper()
	s, err := New(db, cfg)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(context.Background()))
	return s
}

type send func(t *testing.T, env events.Envelope) events.Reply

func inProcess(s *Service) send {
	return func(t *testing.T, env events.Envelope) events.Reply {
		t.Helper()
		return commandtest.DeliverInProcess(t, s.proc, s.db, ServiceName, env)
	}
}

func overRabbitMQ(t *testing.T, db *store.DB) (send, *Service) {
	t.Helper()
	conn := commandtest.Dial(t)
	queue := commandtest.Queue(t, "inventory.commands")
	s := newService(t, db, Config{Queue: queue})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	req := commandtest.Requester(t, conn)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	require.True(t, commandtest.WaitReady(wctx, t, req, queue, commandtest.Envelope(t, events.QueryInventoryStock, events.InventoryStockQuery{})).Accepted())
	return func(t *testing.T, env events.Envelope) events.Reply {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, _ := commandtest.Request(ctx, t, req, queue, env)
		return r
	}, s
}

type step struct {
	name       string
	typ        string
	payload    events.Payload
	data       string // raw data replacing the payload's, to fail validation
	wantReason string
	check      func(t *testing.T, r events.Reply)
}

func line(sku string, q int64) events.StockLine { return events.StockLine{SKU: sku, Quantity: q} }

// steps exercises every command and every rejection on skus a and b; each
// step's expectation depends on the ones before.
func steps(a, b string) []step {
	stockIs := func(sku string, onHand, reserved int64) func(t *testing.T, r events.Reply) {
		return func(t *testing.T, r events.Reply) {
			require.Equal(t, contract.StockLevel{SKU: sku, OnHand: onHand, Reserved: reserved, Available: onHand - reserved}, commandtest.Result[contract.StockLevel](t, r))
		}
	}
	stateIs := func(s contract.StockReservationState) func(t *testing.T, r events.Reply) {
		return func(t *testing.T, r events.Reply) {
			require.Equal(t, s, commandtest.Result[contract.InventoryReserveResult](t, r).Reservation.State)
		}
	}
	return []step{
		{name: "restock a", typ: events.CmdInventoryRestock, payload: events.InventoryRestock{SKU: a, Quantity: 10}, check: stockIs(a, 10, 0)},
		{name: "restock a more", typ: events.CmdInventoryRestock, payload: events.InventoryRestock{SKU: a, Quantity: 5}, check: stockIs(a, 15, 0)},
		{name: "restock b", typ: events.CmdInventoryRestock, payload: events.InventoryRestock{SKU: b, Quantity: 3}, check: stockIs(b, 3, 0)},
		{name: "restock zero", typ: events.CmdInventoryRestock, payload: events.InventoryRestock{SKU: a, Quantity: 1},
			data: `{"sku":"x","quantity":0}`, wantReason: events.ReasonInvalidQuantity},
		{name: "reserve negative quantity", typ: events.CmdInventoryReserve, payload: events.InventoryReserve{ReservationID: "r0", Lines: []events.StockLine{line(a, 1)}},
			data: `{"reservation_id":"r0","lines":[{"sku":"x","quantity":-1}]}`, wantReason: events.ReasonInvalidQuantity},
		{name: "reserve unknown sku holds nothing", typ: events.CmdInventoryReserve,
			payload:    events.InventoryReserve{ReservationID: a + "-r1", OrderID: "o1", Lines: []events.StockLine{line(a, 2), line("nope-"+a, 1)}},
			wantReason: events.ReasonUnknownSKU, check: func(t *testing.T, r events.Reply) {
				res := commandtest.Result[contract.InventoryReserveResult](t, r)
				require.Equal(t, []contract.FailedStockLine{{SKU: "nope-" + a, Requested: 1, Reason: events.ReasonUnknownSKU}}, res.FailedLines)
			}},
		{name: "reserve more than available holds nothing", typ: events.CmdInventoryReserve,
			payload:    events.InventoryReserve{ReservationID: a + "-r1", OrderID: "o1", Lines: []events.StockLine{line(a, 2), line(b, 4)}},
			wantReason: events.ReasonInsufficientStock, check: func(t *testing.T, r events.Reply) {
				res := commandtest.Result[contract.InventoryReserveResult](t, r)
				require.Equal(t, []contract.FailedStockLine{{SKU: b, Requested: 4, Available: 3, Reason: events.ReasonInsufficientStock}}, res.FailedLines)
			}},
		{name: "reserve", typ: events.CmdInventoryReserve,
			payload: events.InventoryReserve{ReservationID: a + "-r1", OrderID: "o1", Lines: []events.StockLine{line(a, 2), line(b, 3), line(a, 1)}},
			check:   stateIs(contract.StockReservationHeld)},
		{name: "reserve again with same lines", typ: events.CmdInventoryReserve,
			payload: events.InventoryReserve{ReservationID: a + "-r1", OrderID: "o1", Lines: []events.StockLine{line(a, 3), line(b, 3)}},
			check:   stateIs(contract.StockReservationHeld)},
		{name: "reserve again with other lines", typ: events.CmdInventoryReserve,
			payload:    events.InventoryReserve{ReservationID: a + "-r1", Lines: []events.StockLine{line(a, 1)}},
			wantReason: contract.ReasonReservationExists},
		{name: "nothing left of b", typ: events.CmdInventoryReserve,
			payload:    events.InventoryReserve{ReservationID: a + "-r2", Lines: []events.StockLine{line(b, 1)}},
			wantReason: events.ReasonInsufficientStock},
		{name: "commit", typ: events.CmdInventoryCommit, payload: events.InventoryCommit{ReservationID: a + "-r1"}, check: stateIs(contract.StockReservationCommitted)},
		{name: "commit again", typ: events.CmdInventoryCommit, payload: events.InventoryCommit{ReservationID: a + "-r1"}, check: stateIs(contract.StockReservationCommitted)},
		{name: "release committed", typ: events.CmdInventoryRelease, payload: events.InventoryRelease{ReservationID: a + "-r1", Reason: events.ReleaseReasonCompensated},
			wantReason: events.ReasonReservationNotHeld},
		{name: "reserve r3", typ: events.CmdInventoryReserve,
			payload: events.InventoryReserve{ReservationID: a + "-r3", OrderID: "o3", Lines: []events.StockLine{line(a, 4)}}, check: stateIs(contract.StockReservationHeld)},
		{name: "release", typ: events.CmdInventoryRelease, payload: events.InventoryRelease{ReservationID: a + "-r3", Reason: events.ReleaseReasonExpired}, check: stateIs(contract.StockReservationReleased)},
		{name: "release again", typ: events.CmdInventoryRelease, payload: events.InventoryRelease{ReservationID: a + "-r3", Reason: events.ReleaseReasonExpired}, check: stateIs(contract.StockReservationReleased)},
		{name: "commit released", typ: events.CmdInventoryCommit, payload: events.InventoryCommit{ReservationID: a + "-r3"}, wantReason: events.ReasonReservationNotHeld},
		{name: "commit unknown", typ: events.CmdInventoryCommit, payload: events.InventoryCommit{ReservationID: "nope"}, wantReason: events.ReasonUnknownReservation},
		{name: "release unknown", typ: events.CmdInventoryRelease, payload: events.InventoryRelease{ReservationID: "nope", Reason: events.ReleaseReasonReleased}, wantReason: events.ReasonUnknownReservation},
	}
}

func runSteps(t *testing.T, s send) (a, b string) {
	a, b = "sku-a-"+uuid.NewString()[:8], "sku-b-"+uuid.NewString()[:8]
	for _, st := range steps(a, b) {
		t.Run(st.name, func(t *testing.T) {
			env := commandtest.Envelope(t, st.typ, st.payload)
			if st.data != "" {
				env = commandtest.WithData(env, st.data)
			}
			r := s(t, env)
			require.Equal(t, env.ID, r.CommandID)
			if st.wantReason == "" {
				require.Equal(t, events.ReplyAccepted, r.Status, "%s: %s", r.Reason, r.Message)
			} else {
				require.Equal(t, events.ReplyRejected, r.Status)
				require.Equal(t, st.wantReason, r.Reason)
			}
			if st.check != nil {
				st.check(t, r)
			}
		})
	}
	return a, b
}

// checkFinalState checks stock and reservations after runSteps: r1 (3 a, 3
// b) committed, r3 (4 a) released.
func checkFinalState(t *testing.T, s *Service, a, b string) {
	ctx := context.Background()
	stock, err := s.Stock(ctx, a, b)
	require.NoError(t, err)
	require.Equal(t, []contract.StockLevel{{SKU: a, OnHand: 12, Reserved: 0, Available: 12}, {SKU: b, OnHand: 0, Reserved: 0, Available: 0}}, stock)
	rs, err := s.Reservations(ctx, a+"-r1", "")
	require.NoError(t, err)
	require.Equal(t, []contract.StockReservation{{ReservationID: a + "-r1", OrderID: "o1", State: contract.StockReservationCommitted,
		Lines: []events.StockLine{line(a, 3), line(b, 3)}}}, rs)
	rs, err = s.Reservations(ctx, "", "o3")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, contract.StockReservationReleased, rs[0].State)
	require.Equal(t, events.ReleaseReasonExpired, rs[0].Reason)
}

func TestCommands(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		s := newService(t, db, Config{})
		a, b := runSteps(t, inProcess(s))
		checkFinalState(t, s, a, b)

		_, published := commandtest.Outbox(t, db, ServiceName)
		var types []string
		for _, e := range published {
			types = append(types, e.Type)
			require.NotEmpty(t, e.CausationID)
			require.Equal(t, events.DeterministicID(e.CausationID, "event/0/"+e.Type), e.ID)
		}
		require.Equal(t, []string{events.TypeInventoryReserved, events.TypeInventoryCommitted, events.TypeInventoryReserved, events.TypeInventoryReleased}, types)
		_, rel, err := events.DecodeAs[events.InventoryReleased](mustEncode(t, published[3]))
		require.NoError(t, err)
		require.Equal(t, events.InventoryReleased{ReservationID: a + "-r3", OrderID: "o3", Reason: events.ReleaseReasonExpired, Lines: []events.StockLine{line(a, 4)}}, rel)
	})
}

func mustEncode(t *testing.T, env events.Envelope) []byte {
	b, err := env.Encode()
	require.NoError(t, err)
	return b
}

func TestCommandsOverRabbitMQ(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		send, s := overRabbitMQ(t, db)
		a, b := runSteps(t, send)
		checkFinalState(t, s, a, b)

		stock := send(t, commandtest.Envelope(t, events.QueryInventoryStock, events.InventoryStockQuery{SKUs: []string{a}}))
		require.Equal(t, []contract.StockLevel{{SKU: a, OnHand: 12, Available: 12}}, commandtest.Result[[]contract.StockLevel](t, stock))
		res := send(t, commandtest.Envelope(t, events.QueryInventoryReservations, events.InventoryReservationsQuery{OrderID: "o1"}))
		got := commandtest.Result[[]contract.StockReservation](t, res)
		require.Len(t, got, 1)
		require.Equal(t, contract.StockReservationCommitted, got[0].State)
	})
}

func TestRepeatedReserveHoldsOnce(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, Config{})
		sku := "sku-" + uuid.NewString()[:8]
		inProcess(s)(t, commandtest.Envelope(t, events.CmdInventoryRestock, events.InventoryRestock{SKU: sku, Quantity: 10}))
		env := commandtest.Envelope(t, events.CmdInventoryReserve, events.InventoryReserve{ReservationID: "r-" + sku, Lines: []events.StockLine{line(sku, 4)}})
		for range 3 {
			require.NoError(t, s.proc.Deliver(ctx, commandtest.Delivery(t, env)))
		}
		st, err := s.Stock(ctx, sku)
		require.NoError(t, err)
		require.EqualValues(t, 4, st[0].Reserved)
		rows, err := db.Outbox(ctx, ServiceName)
		require.NoError(t, err)
		var bodies []string
		reserved := 0
		for _, r := range rows {
			if r.Message.ID == command.ReplyID(env.ID) {
				bodies = append(bodies, string(r.Message.Body))
			}
			if r.Message.Type == events.TypeInventoryReserved {
				reserved++
			}
		}
		require.Equal(t, []string{bodies[0], bodies[0], bodies[0]}, bodies)
		require.Equal(t, 1, reserved)
	})
}

func TestMalformedCommandsAreDeadLettered(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	s := newService(t, db, Config{})
	env := commandtest.Envelope(t, events.CmdInventoryRelease, events.InventoryRelease{ReservationID: "r", Reason: events.ReleaseReasonReleased})
	for _, d := range []amqp.Delivery{
		commandtest.Delivery(t, commandtest.WithData(env, `{"reservation_id":"r","reason":"because"}`)),
		commandtest.Delivery(t, commandtest.Envelope(t, events.CmdLedgerFreeze, events.LedgerFreeze{AccountID: "x"})),
		{Message: amqp.Message{ID: "z", Body: []byte("[]")}},
	} {
		err := s.proc.Deliver(context.Background(), d)
		require.True(t, amqp.IsPermanent(err), "%v", err)
	}
}
