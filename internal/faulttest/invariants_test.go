//go:build faults

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/services/inventory"
	"github.com/sagaflow/sagaflow/services/ledger"
	"github.com/sagaflow/sagaflow/services/orders"
	"github.com/sagaflow/sagaflow/services/store"
)

// consumerQueues are the queues of the worker's consumers; each has a
// dead-letter queue the checker reads.
var consumerQueues = []string{
	contract.BridgeQueue, contract.OrdersProjectionQueue, contract.OrdersQueryQueue, contract.NotificationsQueue,
	contract.LedgerQueue, contract.InventoryQueue, contract.ReplyQueue,
}

// result is one row of the suite's table.
type result struct {
	test            string
	faults          string
	sagas           int
	terminal        int
	compensated     int
	operatorRetries int64
	published       int
	duplicates      int64
	deadLettered    int
	lost            int
	wall            time.Duration
}

// checker verifies the invariants after a load; violations fail the test
// (with t.Errorf, so that every one of them is reported) and are counted.
type checker struct {
	l   *load
	ctx context.Context
	res *result
	// metrics of worker processes that were killed, added to the running
	// ones'.
	metricsBefore map[string]float64
	// poison maps a consumer queue to the ids of the poison messages that
	// must be in its dead letters.
	poison map[string][]string
	// metrics are the workers' counters at the end, killed ones included.
	metrics map[string]float64
	// killed are the workers the test killed on purpose.
	killed map[*systemtest.Worker]bool
}

func (c *checker) errorf(format string, args ...any) {
	c.l.t.Helper()
	c.l.t.Errorf(format, args...)
}

// check runs every invariant and fills the result.
func (c *checker) check() {
	t := c.l.t
	c.res.sagas = len(c.l.sagas)
	c.res.operatorRetries = c.l.operatorRetries.Load()
	c.checkSagas()
	c.awaitAllClosed()
	transfers := c.transferResults()
	c.checkMoney(transfers)
	c.checkStock()
	c.checkReadModel()
	c.checkHealthy()
	final := map[string]float64{}
	for _, w := range c.l.sys.WorkersRunning("") {
		for k, v := range scrape(t, w.HTTPAddr) {
			final[k] += v
		}
	}
	for k, v := range c.metricsBefore {
		final[k] += v
	}
	c.res.duplicates = int64(final["sagaflow_amqp_duplicates_dropped_total"]) + int64(c.l.audit.duplicates())
	c.metrics = final
	c.stopWorker()
	c.checkEvents(transfers)
	c.checkDeadLetters()
}

// checkSagas: every saga ended with a result a saga can end with.
func (c *checker) checkSagas() {
	outcomes := map[string]int{}
	defer func() { c.l.t.Logf("outcomes: %v", outcomes) }()
	for _, s := range c.l.sagas {
		switch {
		case !s.done:
			c.errorf("%s %s: never ended", s.kind, s.wfID)
		case errors.Is(s.err, errLost):
			c.res.lost++
			c.errorf("%s %s: %v", s.kind, s.wfID, s.err)
		case s.err != nil:
			c.res.terminal++ // closed, but failed: no saga should
			c.errorf("%s %s failed: %v", s.kind, s.wfID, s.err)
		default:
			c.res.terminal++
			switch s.kind {
			case kindTransfer:
				outcomes["transfer "+string(s.transferRes.Outcome)+" "+s.transferRes.Reason]++
				if s.transferRes.Outcome != contract.TransferCompleted {
					c.res.compensated++
				}
			default:
				outcomes["order "+string(s.orderRes.Outcome)+" "+s.orderRes.Reason+" "+s.orderRes.FailedStep]++
				if s.orderRes.Outcome != contract.OrderConfirmed {
					c.res.compensated++
				}
			}
		}
	}
}

// awaitAllClosed: no workflow of the test is left running, children
// included. Visibility is eventually consistent, hence the polling.
func (c *checker) awaitAllClosed() {
	q := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running'", c.l.sys.TaskQueue)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ids, err := c.l.list(c.ctx, q)
		if err == nil && len(ids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.errorf("workflows still running after the load: %v (err %v)", ids, err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// transferOutcome is how one transfer workflow, top-level or child, ended.
type transferOutcome struct {
	in     contract.TransferInput
	res    contract.TransferResult
	err    error
	orders string // the order it belongs to, if any
}

// transferResults returns every transfer workflow of the test by transfer
// id, with the input the load gave it.
func (c *checker) transferResults() map[string]*transferOutcome {
	inputs := map[string]*transferOutcome{}
	for _, s := range c.l.sagas {
		switch s.kind {
		case kindTransfer:
			inputs[s.transfer.TransferID] = &transferOutcome{in: s.transfer}
		default:
			o := s.order
			pay := contract.TransferInput{TransferID: contract.OrderTransferID(o.OrderID), SourceAccountID: o.CustomerID,
				TargetAccountID: o.MerchantID, Amount: o.Total, Currency: o.Currency}
			inputs[pay.TransferID] = &transferOutcome{in: pay, orders: o.OrderID}
			for attempt := 1; attempt <= 5; attempt++ {
				refund := contract.TransferInput{TransferID: contract.OrderRefundTransferID(o.OrderID, attempt),
					SourceAccountID: o.MerchantID, TargetAccountID: o.CustomerID, Amount: o.Total, Currency: o.Currency}
				inputs[refund.TransferID] = &transferOutcome{in: refund, orders: o.OrderID}
			}
		}
	}
	ids, err := c.l.list(c.ctx, fmt.Sprintf("TaskQueue = '%s' AND WorkflowType = 'TransferWorkflow'", c.l.sys.TaskQueue))
	require.NoError(c.l.t, err)
	out := map[string]*transferOutcome{}
	for _, wfID := range ids {
		id := strings.TrimPrefix(wfID, "transfer-")
		tr, ok := inputs[id]
		if !ok {
			c.errorf("transfer workflow %s is not one the load started", wfID)
			continue
		}
		tr.err = c.l.sys.Temporal.GetWorkflow(c.ctx, wfID, "").Get(c.ctx, &tr.res)
		if tr.err != nil {
			c.errorf("transfer %s failed: %v", wfID, tr.err)
		}
		out[id] = tr
	}
	return out
}

// checkMoney: the total is conserved, and the ledger's funds events match
// every transfer's outcome exactly once: a completed transfer withdrew once
// from its source and deposited once to its target; any other outcome left
// every account as it was. A cancelled order left its customer whole.
func (c *checker) checkMoney(transfers map[string]*transferOutcome) {
	var total, initial int64
	type key struct{ transfer, account string }
	net := map[key]int64{}
	moves := map[key][]string{}
	commands := map[string]bool{}
	for _, a := range c.l.accounts {
		initial += a.initial
		var st contract.AccountStatement
		r := c.send(contract.LedgerQueue, events.QueryLedgerStatement, events.LedgerStatementQuery{AccountID: a.id})
		require.NoError(c.l.t, json.Unmarshal(r.Result, &st), a.id)
		total += st.Account.Balance
		if st.Account.Balance < 0 {
			c.errorf("account %s has a negative balance %d", a.id, st.Account.Balance)
		}
		for _, ev := range st.Events {
			if !strings.HasPrefix(ev.Type, "funds.") {
				continue
			}
			if commands[ev.CommandID] {
				c.errorf("command %s applied twice to the ledger", ev.CommandID)
			}
			commands[ev.CommandID] = true
			var m contract.FundsMoved
			require.NoError(c.l.t, json.Unmarshal(ev.Data, &m))
			k := key{m.TransferID, a.id}
			if ev.Type == events.TypeFundsWithdrawn {
				net[k] -= m.Amount
			} else {
				net[k] += m.Amount
			}
			moves[k] = append(moves[k], ev.Type)
			if _, ok := transfers[m.TransferID]; !ok {
				c.errorf("%s on %s for transfer %q, which no transfer workflow ran", ev.Type, a.id, m.TransferID)
			}
		}
	}
	if total != initial {
		c.errorf("money not conserved: accounts hold %d, %d were opened", total, initial)
	}
	customerNet := map[string]int64{} // order id → net of its customer
	for id, tr := range transfers {
		src, dst := key{id, tr.in.SourceAccountID}, key{id, tr.in.TargetAccountID}
		if tr.orders != "" {
			// Failed and resolved transfers count too: whatever moved
			// belongs to the order.
			customer := tr.in.SourceAccountID
			if strings.Contains(id, "-refund") {
				customer = tr.in.TargetAccountID
			}
			customerNet[tr.orders] += net[key{id, customer}]
		}
		if tr.err != nil || tr.res.Outcome == contract.TransferResolved {
			continue
		}
		if tr.res.Outcome == contract.TransferCompleted {
			if !slices.Equal(moves[src], []string{events.TypeFundsWithdrawn}) || !slices.Equal(moves[dst], []string{events.TypeFundsDeposited}) {
				c.errorf("completed transfer %s: source saw %v, target saw %v; want one withdrawal and one deposit", id, moves[src], moves[dst])
			}
		} else if net[src] != 0 || net[dst] != 0 {
			c.errorf("transfer %s ended %s (%s) but moved %d on %s and %d on %s (events %v, %v)",
				id, tr.res.Outcome, tr.res.Reason, net[src], src.account, net[dst], dst.account, moves[src], moves[dst])
		}
	}
	for _, s := range c.l.sagas {
		if s.kind == kindTransfer || s.err != nil {
			continue
		}
		got := customerNet[s.order.OrderID]
		switch s.orderRes.Outcome {
		case contract.OrderConfirmed:
			if got != -s.order.Total {
				c.errorf("confirmed order %s: its customer paid %d, want %d", s.order.OrderID, -got, s.order.Total)
			}
		case contract.OrderCancelled:
			if got != 0 {
				c.errorf("cancelled order %s (%s at %s): its customer is out of %d", s.order.OrderID, s.orderRes.Reason, s.orderRes.FailedStep, -got)
			}
		}
	}
}

// checkStock: for every sku, available + reserved = on hand = initial −
// committed; nothing is left held; exactly the confirmed orders committed
// their lines.
func (c *checker) checkStock() {
	var stock []contract.StockLevel
	require.NoError(c.l.t, json.Unmarshal(c.send(contract.InventoryQueue, events.QueryInventoryStock, events.InventoryStockQuery{}).Result, &stock))
	var reservations []contract.StockReservation
	require.NoError(c.l.t, json.Unmarshal(c.send(contract.InventoryQueue, events.QueryInventoryReservations, events.InventoryReservationsQuery{}).Result, &reservations))
	committed := map[string]int64{}
	committedOrders := map[string][]events.StockLine{}
	for _, r := range reservations {
		switch r.State {
		case contract.StockReservationHeld:
			c.errorf("reservation %s of order %s is still held", r.ReservationID, r.OrderID)
		case contract.StockReservationCommitted:
			for _, l := range r.Lines {
				committed[l.SKU] += l.Quantity
			}
			committedOrders[r.OrderID] = r.Lines
		}
	}
	seen := map[string]bool{}
	for _, st := range stock {
		seen[st.SKU] = true
		initial, ok := c.l.stock[st.SKU]
		if !ok {
			c.errorf("sku %s was never stocked", st.SKU)
			continue
		}
		if st.Reserved != 0 {
			c.errorf("sku %s: %d still reserved", st.SKU, st.Reserved)
		}
		if st.Available+st.Reserved != st.OnHand {
			c.errorf("sku %s: available %d + reserved %d != on hand %d", st.SKU, st.Available, st.Reserved, st.OnHand)
		}
		if st.OnHand != initial-committed[st.SKU] {
			c.errorf("sku %s: on hand %d, want initial %d − committed %d", st.SKU, st.OnHand, initial, committed[st.SKU])
		}
	}
	for sku := range c.l.stock {
		if !seen[sku] {
			c.errorf("sku %s missing from the inventory", sku)
		}
	}
	for _, s := range c.l.sagas {
		if s.kind == kindTransfer || s.err != nil {
			continue
		}
		lines, ok := committedOrders[s.order.OrderID]
		confirmed := s.orderRes.Outcome == contract.OrderConfirmed
		if confirmed != ok {
			c.errorf("order %s ended %s but its reservation committed: %v", s.order.OrderID, s.orderRes.Outcome, ok)
			continue
		}
		if ok {
			var want int64
			for _, l := range s.order.Lines {
				want += l.Quantity
			}
			var got int64
			for _, l := range lines {
				got += l.Quantity
			}
			if got != want {
				c.errorf("order %s committed %d items, ordered %d", s.order.OrderID, got, want)
			}
		}
	}
}

// checkReadModel: the orders read model agrees with every order saga.
func (c *checker) checkReadModel() {
	client, err := orders.NewClient(c.l.sys.Requester, orders.ClientConfig{})
	require.NoError(c.l.t, err)
	for _, s := range c.l.sagas {
		if s.kind == kindTransfer || s.err != nil {
			continue
		}
		want := events.OrderStatusCancelled
		if s.orderRes.Outcome == contract.OrderConfirmed {
			want = events.OrderStatusConfirmed
		}
		// The outcome event is published just before the saga ends: give
		// the projection a moment to apply it.
		var o contract.OrderRecord
		deadline := time.Now().Add(30 * time.Second)
		for {
			o, err = client.Get(c.ctx, s.order.OrderID)
			if (err == nil && o.Status == want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			c.errorf("read model: order %s: %v", s.order.OrderID, err)
			continue
		}
		if o.Status != want {
			c.errorf("read model: order %s is %s, its saga ended %s", s.order.OrderID, o.Status, s.orderRes.Outcome)
		}
		if s.kind == kindBridgeOrder && (o.CustomerID != s.order.CustomerID || o.Total != s.order.Total) {
			c.errorf("read model: order %s has customer %q total %d, placed with %q %d", s.order.OrderID, o.CustomerID, o.Total, s.order.CustomerID, s.order.Total)
		}
	}
}

// checkHealthy: the workers still report every consumer consuming.
func (c *checker) checkHealthy() {
	ws := c.l.sys.WorkersRunning("")
	if len(ws) == 0 {
		c.errorf("every worker exited during the load")
		return
	}
	for _, w := range c.l.sys.Workers() {
		if w.Exited() && !c.killed[w] {
			c.errorf("worker %s exited during the load", w.LogPath)
		}
	}
	for _, w := range ws {
		if err := healthy(w.HTTPAddr); err != nil {
			c.errorf("worker %s unhealthy after the load: %v", w.LogPath, err)
		}
	}
}

func healthy(addr string) error {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return fmt.Errorf("/healthz: %s %s", resp.Status, b.String())
	}
	return nil
}

// stopWorker stops the workers gracefully, so that their databases can be
// read.
func (c *checker) stopWorker() {
	for _, w := range c.l.sys.WorkersRunning("") {
		if err := w.Stop(); err != nil {
			c.errorf("worker %s stop: %v", w.LogPath, err)
		}
	}
}

// refusedReservation reports whether an order ended because the inventory
// refused its reservation (a rejection reason, not a timeout or a failure).
func refusedReservation(res contract.OrderResult) bool {
	switch res.Reason {
	case "timeout", "step_failed", "cancelled":
		return false
	}
	return res.FailedStep == contract.StepOrderReserve
}

// checkEvents: every business event the services and the sagas published
// reached a subscriber (the audit consumer) at least once, and the read
// model applied each of its events once.
func (c *checker) checkEvents(transfers map[string]*transferOutcome) {
	type expected struct{ id, typ, by string }
	var want []expected
	for _, producer := range []string{ledger.ServiceName, inventory.ServiceName} {
		db, err := store.Open(c.ctx, c.l.sys.DSN(producer))
		require.NoError(c.l.t, err)
		rows, err := db.Outbox(c.ctx, producer)
		require.NoError(c.l.t, err)
		_ = db.Close()
		for _, r := range rows {
			if r.Message.Exchange != amqp.DefaultExchange {
				continue
			}
			if r.SentAt.IsZero() || r.LastError != "" {
				c.errorf("%s outbox: %s %s not sent (%q)", producer, r.Message.Type, r.Message.ID, r.LastError)
			}
			want = append(want, expected{r.Message.ID, r.Message.Type, producer})
		}
	}
	for _, s := range c.l.sagas {
		if s.kind == kindBridgeOrder {
			want = append(want, expected{s.placedID, events.TypeOrderPlaced, "faulttest"})
		}
		if s.kind != kindTransfer && s.err == nil {
			typ := events.TypeOrderCancelled
			if s.orderRes.Outcome == contract.OrderConfirmed {
				typ = events.TypeOrderConfirmed
			}
			want = append(want, expected{events.DeterministicID(s.wfID, contract.StepOrderPublishOutcome), typ, s.wfID})
			if refusedReservation(s.orderRes) {
				// The order holds its stock itself (workflows.OwnHoldChange)
				// and publishes the inventory's refusal.
				want = append(want, expected{events.DeterministicID(s.wfID, contract.StepPublishReservationKO), events.TypeInventoryReservationFailed, s.wfID})
			}
		}
	}
	for id, tr := range transfers {
		if tr.err != nil {
			continue
		}
		typ := events.TypeTransferFailed
		if tr.res.Outcome == contract.TransferCompleted {
			typ = events.TypeTransferCompleted
		}
		wfID := contract.TransferWorkflowID(id)
		want = append(want, expected{events.DeterministicID(wfID, contract.StepPublishOutcome), typ, wfID})
	}
	refused, err := c.l.list(c.ctx, fmt.Sprintf("TaskQueue = '%s' AND WorkflowType = 'ReserveInventoryWorkflow' AND ExecutionStatus = 'Failed'", c.l.sys.TaskQueue))
	require.NoError(c.l.t, err)
	for _, wfID := range refused {
		err := c.l.sys.Temporal.GetWorkflow(c.ctx, wfID, "").Get(c.ctx, nil)
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeReservationFailed {
			want = append(want, expected{events.DeterministicID(wfID, contract.StepPublishReservationKO), events.TypeInventoryReservationFailed, wfID})
		}
	}
	c.res.published = len(want)

	// The audit consumer runs on the test's own connection: give it the
	// time to take what the relay sent last.
	deadline := time.Now().Add(30 * time.Second)
	var missing []expected
	for {
		missing = missing[:0]
		for _, e := range want {
			if c.l.audit.count(e.id) == 0 {
				missing = append(missing, e)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, e := range missing {
		c.errorf("event lost: %s %s published by %s never reached a subscriber", e.typ, e.id, e.by)
	}
	c.res.lost += len(missing)

	db, err := store.Open(c.ctx, c.l.sys.DSN(orders.ServiceName))
	require.NoError(c.l.t, err)
	defer db.Close()
	applied := map[string]bool{}
	rows, err := db.Query(c.ctx, "SELECT event_id FROM orders_applied_events")
	require.NoError(c.l.t, err)
	for rows.Next() {
		var id string
		require.NoError(c.l.t, rows.Scan(&id))
		applied[id] = true
	}
	require.NoError(c.l.t, rows.Err())
	_ = rows.Close()
	for _, e := range want {
		if (strings.HasPrefix(e.typ, "order.") || strings.HasPrefix(e.typ, "inventory.")) && !applied[e.id] {
			c.errorf("read model never applied %s %s", e.typ, e.id)
			c.res.lost++
		}
	}
}

// checkDeadLetters: the dead letters hold exactly the poison messages, each
// with the reason it was refused.
func (c *checker) checkDeadLetters() {
	for _, q := range consumerQueues {
		dls, err := c.l.sys.Conn.ListDeadLetters(c.ctx, q, 10_000)
		if err != nil {
			c.errorf("dead letters of %s: %v", q, err)
			continue
		}
		c.res.deadLettered += len(dls)
		expect := map[string]bool{}
		for _, id := range c.poison[q] {
			expect[id] = true
		}
		for _, dl := range dls {
			if !expect[dl.ID] {
				c.errorf("dead letter in %s: %s %s (attempts %d): %s", q, dl.Type, dl.ID, dl.Attempts, dl.LastError)
				continue
			}
			delete(expect, dl.ID)
			if dl.LastError == "" {
				c.errorf("dead letter %s in %s carries no reason", dl.ID, q)
			}
		}
		for id := range expect {
			c.errorf("poison message %s is not in the dead letters of %s", id, q)
		}
	}
}

// send asks a service and fails the test unless it answers.
func (c *checker) send(queue, typ string, p events.Payload) events.Reply {
	r, err := c.l.sys.Send(c.ctx, queue, typ, p)
	require.NoError(c.l.t, err)
	require.True(c.l.t, r.Accepted(), "%s rejected: %s %s", typ, r.Reason, r.Message)
	return r
}

// scrape reads a worker's sagaflow_* counters, summed over their labels.
func scrape(t interface{ Logf(string, ...any) }, addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Logf("scrape %s: %v", addr, err)
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "sagaflow_") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// Labels may hold spaces: take the value after the closing brace.
			end := strings.LastIndexByte(line, '}')
			name, rest = line[:i], strings.TrimSpace(line[end+1:])
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			out[name] += v
			if full, _, ok := strings.Cut(line, "} "); ok {
				out[full+"}"] += v
			}
		}
	}
	return out
}

// kill SIGKILLs workers at the same moment, keeping the counters they
// reported so far (they die with them), and waits until they are gone.
func (c *checker) kill(ws ...*systemtest.Worker) {
	for _, w := range ws {
		for k, v := range scrape(c.l.t, w.HTTPAddr) {
			c.metricsBefore[k] += v
		}
		c.killed[w] = true
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(w.Kill)
	}
	wg.Wait()
}
