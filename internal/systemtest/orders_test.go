package systemtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/services/orders"
)

// The shape of the order storm: 200 order.placed events, of which 10% repeat
// an order already published and 10% are invalid; 10% of the valid orders
// are followed at once by their customer's cancel.
const (
	stormEvents        = 200
	stormInvalid       = 20
	stormDuplicates    = 20
	stormValid         = stormEvents - stormInvalid - stormDuplicates
	stormCancels       = stormValid / 10
	stormCustomers     = 20
	stormPoorCustomers = 4
	stormMerchants     = 3
	stormSKUs          = 10
	stormScarceSKUs    = 2
	stormCurrency      = "EUR"
	// stormMerchantBalance is what each merchant starts with.
	stormMerchantBalance = 10_000
)

// Deadlines of the phases that wait for the system.
const (
	sagaDeadline       = 3 * time.Minute
	readModelDeadline  = time.Minute
	visibilityDeadline = 30 * time.Second
)

// stormOrder is one distinct valid order of the storm.
type stormOrder struct {
	order events.OrderPlaced
	env   events.Envelope
	// cancelReason is set for an order whose order.cancel_requested is
	// published right after its order.placed.
	cancelReason string
	cancelEnv    events.Envelope
	// scarce: a line asks for a sku stocked below its demand, so the order
	// may fail for stock; no other order can.
	scarce bool
	// poor: its customer cannot pay all of their orders, so the order may
	// fail for funds; no other order can.
	poor bool

	result contract.OrderResult
}

// stormInvalidEvent is an order.placed event whose payload breaks a rule.
type stormInvalidEvent struct {
	orderID string
	msg     amqp.Message
	// problem is the payload's validation error, expected in the dead
	// letter's reason.
	problem error
}

// orderStorm is the scenario: accounts, skus, orders and the order in
// which their events are published.
type orderStorm struct {
	run       string
	customers []string
	poor      map[string]bool
	merchants []string
	skus      []string
	scarce    map[string]bool
	balances  map[string]int64 // initial balance per account
	stock     map[string]int64 // initial on-hand per sku
	orders    []*stormOrder
	byID      map[string]*stormOrder
	invalid   []stormInvalidEvent
	// publications are the messages in publishing order.
	publications []amqp.Message
}

// newOrderStorm builds the scenario from rng. Stock and balances are
// derived from the orders: a plentiful sku has stock for every order and
// a rich customer money for all of theirs, so only scarce skus can fail an
// order for stock and only poor customers for funds.
func newOrderStorm(t *testing.T, run string, rng *rand.Rand) *orderStorm {
	t.Helper()
	s := &orderStorm{
		run:      run,
		poor:     map[string]bool{},
		scarce:   map[string]bool{},
		balances: map[string]int64{},
		stock:    map[string]int64{},
		byID:     map[string]*stormOrder{},
	}
	for i := range stormCustomers {
		id := fmt.Sprintf("cust-%s-%02d", run, i)
		s.customers = append(s.customers, id)
		s.poor[id] = i < stormPoorCustomers
	}
	for i := range stormMerchants {
		id := fmt.Sprintf("merch-%s-%d", run, i)
		s.merchants = append(s.merchants, id)
		s.balances[id] = stormMerchantBalance
	}
	var plentiful, scarce []string
	for i := range stormSKUs {
		id := fmt.Sprintf("sku-%s-%02d", run, i)
		s.skus = append(s.skus, id)
		if i >= stormSKUs-stormScarceSKUs {
			s.scarce[id] = true
			scarce = append(scarce, id)
		} else {
			plentiful = append(plentiful, id)
		}
	}

	demand := map[string]int64{}
	spent := map[string][]int64{}
	for i := range stormValid {
		o := events.OrderPlaced{
			OrderID:    fmt.Sprintf("%s-%03d", run, i),
			CustomerID: s.customers[rng.IntN(len(s.customers))],
			MerchantID: s.merchants[rng.IntN(len(s.merchants))],
			Currency:   stormCurrency,
		}
		so := &stormOrder{poor: s.poor[o.CustomerID]}
		used := map[string]bool{}
		for range 1 + rng.IntN(3) {
			var sku string
			for sku == "" || used[sku] {
				if rng.IntN(10) == 0 {
					sku = scarce[rng.IntN(len(scarce))]
				} else {
					sku = plentiful[rng.IntN(len(plentiful))]
				}
			}
			used[sku] = true
			l := events.OrderLine{SKU: sku, Quantity: 1 + rng.Int64N(3), UnitPrice: 100 + rng.Int64N(2400)}
			o.Lines = append(o.Lines, l)
			o.Total += l.Quantity * l.UnitPrice
			demand[sku] += l.Quantity
			so.scarce = so.scarce || s.scarce[sku]
		}
		env, err := events.New(events.TypeOrderPlaced, "systemtest", o, events.WithSubject(o.OrderID))
		require.NoError(t, err)
		so.order, so.env = o, env
		spent[o.CustomerID] = append(spent[o.CustomerID], o.Total)
		s.orders = append(s.orders, so)
		s.byID[o.OrderID] = so
	}
	for _, sku := range s.skus {
		// A scarce sku holds about a third of what is asked of it.
		s.stock[sku] = max(1, demand[sku])
		if s.scarce[sku] {
			s.stock[sku] = max(1, demand[sku]*3/10)
		}
	}
	for _, c := range s.customers {
		var sum int64
		for _, v := range spent[c] {
			sum += v
		}
		s.balances[c] = sum
		if s.poor[c] {
			// Enough for about a third of their orders.
			s.balances[c] = sum / 3
		}
	}

	for _, i := range rng.Perm(stormValid)[:stormCancels] {
		so := s.orders[i]
		so.cancelReason = "customer changed their mind about " + so.order.OrderID
		env, err := events.New(events.TypeOrderCancelRequested, "systemtest",
			events.OrderCancelRequested{OrderID: so.order.OrderID, Reason: so.cancelReason}, events.WithSubject(so.order.OrderID))
		require.NoError(t, err)
		so.cancelEnv = env
	}

	s.invalid = invalidOrders(t, run, s)
	s.publications = s.publicationOrder(t, rng)
	return s
}

// invalidOrders builds stormInvalid order.placed events, each breaking one
// rule of OrderPlaced.Validate.
func invalidOrders(t *testing.T, run string, s *orderStorm) []stormInvalidEvent {
	t.Helper()
	breaks := []func(*events.OrderPlaced){
		func(o *events.OrderPlaced) { o.Total++ },
		func(o *events.OrderPlaced) { o.CustomerID = "" },
		func(o *events.OrderPlaced) { o.MerchantID = o.CustomerID },
		func(o *events.OrderPlaced) { o.Lines[0].Quantity = 0 },
		func(o *events.OrderPlaced) { o.Currency = "eur" },
		func(o *events.OrderPlaced) { o.Lines, o.Total = nil, 1 },
	}
	var out []stormInvalidEvent
	for i := range stormInvalid {
		valid := events.OrderPlaced{
			OrderID:    fmt.Sprintf("bad-%s-%02d", run, i),
			CustomerID: s.customers[i%len(s.customers)],
			MerchantID: s.merchants[i%len(s.merchants)],
			Lines:      []events.OrderLine{{SKU: s.skus[i%len(s.skus)], Quantity: 1, UnitPrice: 500}},
			Total:      500,
			Currency:   stormCurrency,
		}
		env, err := events.New(events.TypeOrderPlaced, "systemtest", valid, events.WithSubject(valid.OrderID))
		require.NoError(t, err)
		bad := valid
		bad.Lines = slices.Clone(valid.Lines)
		breaks[i%len(breaks)](&bad)
		problem := bad.Validate()
		require.Error(t, problem, "invalid order %d validates", i)
		// events.New and Encode refuse an invalid payload: the envelope
		// is marshalled by hand, as a faulty producer would.
		env.Data, err = json.Marshal(bad)
		require.NoError(t, err)
		body, err := json.Marshal(env)
		require.NoError(t, err)
		out = append(out, stormInvalidEvent{
			orderID: bad.OrderID,
			problem: problem,
			msg: amqp.Message{
				Exchange:    amqp.DefaultExchange,
				RoutingKey:  env.Type,
				ID:          env.ID,
				Type:        env.Type,
				Timestamp:   env.Time,
				ContentType: events.ContentTypeJSON,
				Body:        body,
			},
		})
	}
	return out
}

// publicationOrder interleaves the events: every valid order in turn (its
// cancel right behind it), the invalid events anywhere, and each duplicate
// somewhere after its original. Half the duplicates are the same message
// again (the consumers drop the repeated id); the other half are a new
// envelope of the same order (the bridge finds the saga already started).
func (s *orderStorm) publicationOrder(t *testing.T, rng *rand.Rand) []amqp.Message {
	t.Helper()
	msg := func(env events.Envelope) amqp.Message {
		m, err := amqp.MessageFromEnvelope(amqp.DefaultExchange, env)
		require.NoError(t, err)
		return m
	}
	type group struct {
		orderID string
		msgs    []amqp.Message
	}
	var groups []group
	for _, so := range s.orders {
		g := group{orderID: so.order.OrderID, msgs: []amqp.Message{msg(so.env)}}
		if so.cancelReason != "" {
			g.msgs = append(g.msgs, msg(so.cancelEnv))
		}
		groups = append(groups, g)
	}
	for _, inv := range s.invalid {
		groups = slices.Insert(groups, rng.IntN(len(groups)+1), group{msgs: []amqp.Message{inv.msg}})
	}
	for k, i := range rng.Perm(stormValid)[:stormDuplicates] {
		so := s.orders[i]
		dup := so.env
		if k%2 == 1 {
			var err error
			dup, err = events.New(events.TypeOrderPlaced, "systemtest", so.order, events.WithSubject(so.order.OrderID))
			require.NoError(t, err)
		}
		at := slices.IndexFunc(groups, func(g group) bool { return g.orderID == so.order.OrderID })
		pos := at + 1 + rng.IntN(len(groups)-at)
		groups = slices.Insert(groups, pos, group{msgs: []amqp.Message{msg(dup)}})
	}
	var out []amqp.Message
	for _, g := range groups {
		out = append(out, g.msgs...)
	}
	placed := 0
	for _, m := range out {
		if m.Type == events.TypeOrderPlaced {
			placed++
		}
	}
	require.Equal(t, stormEvents, placed)
	return out
}

func (s *orderStorm) accounts() []string {
	return append(slices.Clone(s.customers), s.merchants...)
}

// TestOrderStorm publishes 200 order.placed events (duplicates, invalid
// ones, orders that fail for stock or funds, orders cancelled by their
// customer) into the whole system and checks its invariants once every
// saga ended: one saga per distinct valid order, every saga terminal, stock
// and money conserved and moved exactly by the confirmed orders, every
// invalid event dead-lettered by the bridge with its validation error, and
// a read model that agrees with every saga.
func TestOrderStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system")
	}
	began := time.Now()
	sys := systemtest.Start(t, systemtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), sagaDeadline+2*time.Minute)
	defer cancel()

	seed := uint64(time.Now().UnixNano())
	run := uuid.NewString()[:8]
	t.Logf("run %s, seed %d", run, seed)
	storm := newOrderStorm(t, run, rand.New(rand.NewPCG(seed, seed>>1)))

	// Setup through commands, as an operator would.
	for _, id := range storm.accounts() {
		sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen,
			events.LedgerOpen{AccountID: id, Currency: stormCurrency, Owner: id, InitialBalance: storm.balances[id]})
	}
	for _, sku := range storm.skus {
		sys.MustAccept(ctx, contract.InventoryQueue, events.CmdInventoryRestock,
			events.InventoryRestock{SKU: sku, Quantity: storm.stock[sku]})
	}
	setupDone := time.Now()

	for _, m := range storm.publications {
		require.NoError(t, sys.Publisher.Publish(ctx, m), "publish %s %s", m.Type, m.ID)
	}
	published := time.Now()

	sagaCtx, sagaCancel := context.WithTimeout(ctx, sagaDeadline)
	defer sagaCancel()
	awaitSagas(t, sagaCtx, sys, storm)
	sagasDone := time.Now()

	counts := checkOutcomes(t, storm)
	checkOneSagaPerOrder(t, ctx, sys, storm)
	checkStock(t, ctx, sys, storm)
	checkMoney(t, ctx, sys, storm)
	checkDeadLetters(t, ctx, sys, storm)
	checkReadModel(t, ctx, sys, storm)

	t.Logf("outcomes: %s", counts)
	t.Logf("wall time %s: worker start and setup %s, publish %s, sagas %s, checks %s",
		time.Since(began).Round(time.Millisecond), setupDone.Sub(began).Round(time.Millisecond),
		published.Sub(setupDone).Round(time.Millisecond), sagasDone.Sub(published).Round(time.Millisecond),
		time.Since(sagasDone).Round(time.Millisecond))
}

// awaitSagas waits for the result of every distinct valid order's saga.
// The bridge starts them asynchronously, so a saga not started yet is
// looked for again until ctx ends.
func awaitSagas(t *testing.T, ctx context.Context, sys *systemtest.System, storm *orderStorm) {
	t.Helper()
	errs := make([]error, len(storm.orders))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, so := range storm.orders {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = awaitOrder(ctx, sys.Temporal, so)
		})
	}
	wg.Wait()
	var problems []string
	for i, err := range errs {
		if err == nil {
			continue
		}
		id := contract.OrderWorkflowID(storm.orders[i].order.OrderID)
		problem := fmt.Sprintf("%s: %v", id, err)
		descCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		problem += describeWorkflow(descCtx, sys.Temporal, id)
		cancel()
		problems = append(problems, problem)
	}
	require.Empty(t, problems, "sagas that did not end well within %s", sagaDeadline)
}

// describeWorkflow says where a workflow that did not end stands: its
// status, its pending activities, the event types of its history, and the
// same for its pending children.
func describeWorkflow(ctx context.Context, c client.Client, id string) string {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return fmt.Sprintf(" (describe: %v)", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %s: %s", id, d.WorkflowExecutionInfo.GetStatus())
	for _, a := range d.PendingActivities {
		fmt.Fprintf(&b, "\n    pending activity %s: %s, attempt %d, last failure %v",
			a.GetActivityType().GetName(), a.GetState(), a.GetAttempt(), a.GetLastFailure().GetMessage())
	}
	var history []string
	it := c.GetWorkflowHistory(ctx, id, "", false, 0)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			history = append(history, err.Error())
			break
		}
		history = append(history, fmt.Sprintf("%d %s", e.GetEventId(), e.GetEventType()))
	}
	fmt.Fprintf(&b, "\n    history: %s", strings.Join(history, ", "))
	for _, ch := range d.PendingChildren {
		fmt.Fprintf(&b, "\n    pending child %s", ch.GetWorkflowId())
		b.WriteString(describeWorkflow(ctx, c, ch.GetWorkflowId()))
	}
	return b.String()
}

func awaitOrder(ctx context.Context, c client.Client, so *stormOrder) error {
	id := contract.OrderWorkflowID(so.order.OrderID)
	for {
		err := c.GetWorkflow(ctx, id, "").Get(ctx, &so.result)
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("never started: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stormCounts are the outcomes of the storm's sagas.
type stormCounts struct {
	confirmed, noStock, noFunds, cancelledByCustomer, cancelTooLate, cancelOvertaken int
}

func (c stormCounts) String() string {
	return fmt.Sprintf("%d confirmed, %d cancelled for stock, %d cancelled for funds, %d cancelled by their customer; of the %d cancels, %d came too late (order confirmed), %d found the order already failed",
		c.confirmed, c.noStock, c.noFunds, c.cancelledByCustomer, stormCancels, c.cancelTooLate, c.cancelOvertaken)
}

// checkOutcomes checks that every saga ended confirmed or cancelled for a
// reason its order could have: stock only with a scarce sku, funds only for
// a poor customer, a customer's reason only after their cancel.
func checkOutcomes(t *testing.T, storm *orderStorm) stormCounts {
	t.Helper()
	var c stormCounts
	for _, so := range storm.orders {
		r, id := so.result, so.order.OrderID
		require.Equal(t, id, r.OrderID)
		switch r.Outcome {
		case contract.OrderConfirmed:
			require.Empty(t, r.Reason, id)
			c.confirmed++
			if so.cancelReason != "" {
				c.cancelTooLate++
			}
		case contract.OrderCancelled:
			switch r.Reason {
			case events.ReasonInsufficientStock:
				require.True(t, so.scarce, "order %s without a scarce sku failed for stock", id)
				require.Equal(t, contract.StepOrderReserve, r.FailedStep, id)
				c.noStock++
			case events.ReasonInsufficientFunds:
				require.True(t, so.poor, "order %s of a rich customer failed for funds", id)
				require.Equal(t, contract.StepOrderPayment, r.FailedStep, id)
				c.noFunds++
			default:
				require.NotEmpty(t, so.cancelReason, "order %s cancelled without a cancel: %+v", id, r)
				require.Equal(t, so.cancelReason, r.Reason, id)
				require.Empty(t, r.FailedStep, id)
				c.cancelledByCustomer++
			}
			if so.cancelReason != "" && r.Reason != so.cancelReason {
				c.cancelOvertaken++
			}
		default:
			require.Failf(t, "unexpected outcome", "order %s: %+v", id, r)
		}
	}
	require.Positive(t, c.confirmed, c.String())
	require.Positive(t, c.noStock, c.String())
	require.Positive(t, c.noFunds, c.String())
	require.Positive(t, c.cancelledByCustomer, c.String())
	return c
}

// checkOneSagaPerOrder lists the order sagas of the test's task queue: one
// closed run per distinct valid order and none for an invalid one, with a
// SagaStatus matching the result.
func checkOneSagaPerOrder(t *testing.T, ctx context.Context, sys *systemtest.System, storm *orderStorm) {
	t.Helper()
	query := fmt.Sprintf("TaskQueue = '%s' AND WorkflowType = '%s' AND ExecutionStatus != 'Running'", sys.TaskQueue, contract.OrderWorkflowType)
	var runs map[string][]string // workflow id -> SagaStatus of each run
	deadline := time.Now().Add(visibilityDeadline)
	// Visibility is updated asynchronously after a workflow closes.
	for {
		runs = map[string][]string{}
		total := 0
		var token []byte
		for {
			resp, err := sys.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: query, NextPageToken: token, PageSize: 1000,
			})
			require.NoError(t, err)
			for _, e := range resp.Executions {
				var status string
				if p, ok := e.GetSearchAttributes().GetIndexedFields()[contract.SagaStatusKey.GetName()]; ok {
					require.NoError(t, converter.GetDefaultDataConverter().FromPayload(p, &status))
				}
				runs[e.Execution.WorkflowId] = append(runs[e.Execution.WorkflowId], status)
				total++
			}
			if token = resp.NextPageToken; len(token) == 0 {
				break
			}
		}
		if total >= len(storm.orders) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Len(t, runs, len(storm.orders), "order sagas listed")
	for _, so := range storm.orders {
		id := contract.OrderWorkflowID(so.order.OrderID)
		statuses := runs[id]
		require.Len(t, statuses, 1, "runs of %s", id)
		want := []contract.SagaStatus{contract.StatusCompleted}
		switch {
		case so.result.Outcome == contract.OrderCancelled && so.result.Reason == so.cancelReason:
			want = []contract.SagaStatus{contract.StatusCancelled}
		case so.result.Outcome == contract.OrderCancelled && so.cancelReason != "":
			// A cancel that came while the failing step was ending
			// interrupts nothing but still marks the saga cancelled.
			want = []contract.SagaStatus{contract.StatusCompensated, contract.StatusCancelled}
		case so.result.Outcome == contract.OrderCancelled:
			want = []contract.SagaStatus{contract.StatusCompensated}
		}
		require.Contains(t, want, contract.SagaStatus(statuses[0]), "SagaStatus of %s (%+v)", id, so.result)
	}
	for _, inv := range storm.invalid {
		_, err := sys.Temporal.DescribeWorkflowExecution(ctx, contract.OrderWorkflowID(inv.orderID), "")
		var notFound *serviceerror.NotFound
		require.ErrorAs(t, err, &notFound, "invalid order %s has a saga", inv.orderID)
	}
}

// checkStock checks that every sku's on-hand went down by exactly what the
// confirmed orders bought, nothing stays reserved, and every reservation
// ended as its order did.
func checkStock(t *testing.T, ctx context.Context, sys *systemtest.System, storm *orderStorm) {
	t.Helper()
	want := maps.Clone(storm.stock)
	for _, so := range storm.orders {
		if so.result.Outcome == contract.OrderConfirmed {
			for _, l := range so.order.Lines {
				want[l.SKU] -= l.Quantity
			}
		}
	}
	r := sys.MustAccept(ctx, contract.InventoryQueue, events.QueryInventoryStock, events.InventoryStockQuery{SKUs: storm.skus})
	var stock []contract.StockLevel
	require.NoError(t, json.Unmarshal(r.Result, &stock))
	require.Len(t, stock, len(storm.skus))
	for _, st := range stock {
		require.Equal(t, st.OnHand, st.Available+st.Reserved, "sku %s: available + reserved", st.SKU)
		require.Zero(t, st.Reserved, "sku %s: left reserved", st.SKU)
		require.Equal(t, want[st.SKU], st.OnHand, "sku %s: on hand = initial %d − committed", st.SKU, storm.stock[st.SKU])
		require.GreaterOrEqual(t, st.OnHand, int64(0), st.SKU)
	}

	r = sys.MustAccept(ctx, contract.InventoryQueue, events.QueryInventoryReservations, events.InventoryReservationsQuery{})
	var reservations []contract.StockReservation
	require.NoError(t, json.Unmarshal(r.Result, &reservations))
	held := map[string]contract.StockReservation{}
	for _, res := range reservations {
		require.NotContains(t, held, res.OrderID, "order %s has two reservations", res.OrderID)
		held[res.OrderID] = res
	}
	for _, so := range storm.orders {
		res, ok := held[so.order.OrderID]
		if so.result.Outcome == contract.OrderConfirmed {
			require.True(t, ok, "confirmed order %s has no reservation", so.order.OrderID)
			require.Equal(t, contract.StockReservationCommitted, res.State, so.order.OrderID)
			continue
		}
		if ok {
			require.Equal(t, contract.StockReservationReleased, res.State, "cancelled order %s", so.order.OrderID)
		}
	}
}

// checkMoney checks that the sum of the balances did not change, that every
// account ends at its initial balance moved by its confirmed orders, and,
// from the ledger's statements, that each confirmed order moved exactly
// its total from its customer to its merchant and each cancelled one
// nothing net.
func checkMoney(t *testing.T, ctx context.Context, sys *systemtest.System, storm *orderStorm) {
	t.Helper()
	want := maps.Clone(storm.balances)
	var initial int64
	for _, b := range storm.balances {
		initial += b
	}
	for _, so := range storm.orders {
		if so.result.Outcome == contract.OrderConfirmed {
			want[so.order.CustomerID] -= so.order.Total
			want[so.order.MerchantID] += so.order.Total
		}
	}
	// net[order][account] is what the order's transfers moved in or out.
	net := map[string]map[string]int64{}
	var final int64
	for _, id := range storm.accounts() {
		r := sys.MustAccept(ctx, contract.LedgerQueue, events.QueryLedgerStatement, events.LedgerStatementQuery{AccountID: id})
		var st contract.AccountStatement
		require.NoError(t, json.Unmarshal(r.Result, &st))
		require.Equal(t, want[id], st.Account.Balance, "balance of %s", id)
		final += st.Account.Balance
		for _, e := range st.Events {
			var sign int64
			switch e.Type {
			case contract.AccountEventWithdrawn:
				sign = -1
			case contract.AccountEventDeposited, contract.AccountEventRefunded:
				sign = 1
			default:
				continue
			}
			var moved contract.FundsMoved
			require.NoError(t, json.Unmarshal(e.Data, &moved))
			orderID := strings.TrimPrefix(moved.TransferID, "order-")
			orderID, _, _ = strings.Cut(orderID, "-refund")
			so, ok := storm.byID[orderID]
			require.True(t, ok, "%s moved by unknown transfer %q", id, moved.TransferID)
			if net[so.order.OrderID] == nil {
				net[so.order.OrderID] = map[string]int64{}
			}
			net[so.order.OrderID][id] += sign * moved.Amount
		}
	}
	require.Equal(t, initial, final, "sum of all balances")
	for _, so := range storm.orders {
		moved := net[so.order.OrderID]
		if so.result.Outcome == contract.OrderConfirmed {
			require.Equal(t, map[string]int64{so.order.CustomerID: -so.order.Total, so.order.MerchantID: so.order.Total}, moved,
				"money moved by confirmed order %s", so.order.OrderID)
			continue
		}
		for acc, v := range moved {
			require.Zero(t, v, "cancelled order %s moved %d net on %s", so.order.OrderID, v, acc)
		}
	}
}

// checkDeadLetters checks that every invalid event is in the bridge's dead
// letters with its validation error, and that nothing else is there but
// cancels that found their order's saga already ended.
func checkDeadLetters(t *testing.T, ctx context.Context, sys *systemtest.System, storm *orderStorm) {
	t.Helper()
	want := map[string]stormInvalidEvent{}
	for _, inv := range storm.invalid {
		want[inv.msg.ID] = inv
	}
	cancels := map[string]*stormOrder{}
	for _, so := range storm.orders {
		if so.cancelReason != "" {
			cancels[so.cancelEnv.ID] = so
		}
	}
	// The bridge dead-letters concurrently with everything else.
	var dead []amqp.DeadLetter
	deadline := time.Now().Add(visibilityDeadline)
	for {
		var err error
		dead, err = sys.Conn.ListDeadLetters(ctx, contract.BridgeQueue, 1000)
		require.NoError(t, err)
		found := 0
		for _, d := range dead {
			if _, ok := want[d.ID]; ok {
				found++
			}
		}
		if found == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]bool{}
	for _, d := range dead {
		if inv, ok := want[d.ID]; ok {
			require.False(t, seen[d.ID], "invalid event %s dead-lettered twice", d.ID)
			seen[d.ID] = true
			require.Contains(t, d.LastError, events.ErrInvalidPayload.Error(), inv.orderID)
			require.Contains(t, d.LastError, inv.problem.Error(), inv.orderID)
			require.Equal(t, events.TypeOrderPlaced, d.OriginalRoutingKey, inv.orderID)
			continue
		}
		so, ok := cancels[d.ID]
		require.True(t, ok, "unexpected dead letter %s (%s): %s", d.ID, d.Type, d.LastError)
		// A cancel that found no running saga: the saga had already
		// ended, so it cannot have been the customer's cancel that ended it.
		require.Contains(t, d.LastError, "has no running saga", so.order.OrderID)
		require.NotEqual(t, so.cancelReason, so.result.Reason, "order %s cancelled by a dead-lettered cancel", so.order.OrderID)
	}
	require.Len(t, seen, len(want), "invalid events in %s.dlq", contract.BridgeQueue)
}

// checkReadModel polls the read model until every order has a terminal
// status (the projection is asynchronous), then checks it agrees with the
// saga: confirmed ↔ confirmed, cancelled ↔ cancelled with the same reason
// and failed step; and that it has no row for an invalid order.
func checkReadModel(t *testing.T, ctx context.Context, sys *systemtest.System, storm *orderStorm) {
	t.Helper()
	c, err := orders.NewClient(sys.Requester, orders.ClientConfig{})
	require.NoError(t, err)
	deadline := time.Now().Add(readModelDeadline)
	for _, so := range storm.orders {
		id := so.order.OrderID
		var o contract.OrderRecord
		for {
			o, err = c.Get(ctx, id)
			if (err == nil && o.Status.Terminal()) || time.Now().After(deadline) {
				break
			}
			if err != nil && !errors.Is(err, orders.ErrUnknownOrder) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, "read model of order %s", id)
		require.Equal(t, so.order.CustomerID, o.CustomerID, id)
		require.Equal(t, so.order.MerchantID, o.MerchantID, id)
		require.Equal(t, so.order.Total, o.Total, id)
		require.Equal(t, so.order.Lines, o.Lines, id)
		switch so.result.Outcome {
		case contract.OrderConfirmed:
			require.Equal(t, events.OrderStatusConfirmed, o.Status, "order %s: saga %+v", id, so.result)
			require.Empty(t, o.FailureReason, id)
		default:
			require.Equal(t, events.OrderStatusCancelled, o.Status, "order %s: saga %+v", id, so.result)
			require.Equal(t, so.result.Reason, o.FailureReason, id)
			require.Equal(t, so.result.FailedStep, o.FailedStep, id)
		}
	}
	for _, inv := range storm.invalid {
		_, err := c.Get(ctx, inv.orderID)
		require.ErrorIs(t, err, orders.ErrUnknownOrder, "invalid order %s in the read model", inv.orderID)
	}
}
