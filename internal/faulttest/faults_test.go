//go:build faults

package faulttest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/faults"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

func TestMain(m *testing.M) {
	temporaltest.AtExit(printTable)
	systemtest.Main(m)
}

var table struct {
	mu   sync.Mutex
	rows []result
}

// printTable prints one row per test once every test ran, so CI output
// shows what each fault did.
func printTable() {
	table.mu.Lock()
	defer table.mu.Unlock()
	if len(table.rows) == 0 {
		return
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(os.Stdout, "\nfault suite:")
	fmt.Fprintln(w, "test\tfaults injected\tsagas\tterminal\tcompensated\toperator retries\tevents published\tduplicates dropped\tdead-lettered\tlost\twall time\t")
	for _, r := range table.rows {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.test, r.faults, r.sagas, r.terminal, r.compensated,
			r.operatorRetries, r.published, r.duplicates, r.deadLettered, r.lost, r.wall.Round(time.Second))
	}
	_ = w.Flush()
}

// testDeadline bounds one test: the load, the faults and the checks.
const testDeadline = 4 * time.Minute

// clusterTestDeadline bounds one test on the production topology.
const clusterTestDeadline = 6 * time.Minute

// scenario is what distinguishes one test from another: the fault and when.
type scenario struct {
	// activityFaults makes the workers fail activities at random.
	activityFaults faults.Config
	// hooks returns the faults to inject during the load and describes
	// them for the table once the load ended.
	hooks func(f *fixture) []hook
	// describe summarises the faults injected, for the table.
	describe func(f *fixture) string
	// topology, when set, runs the system on the production topology.
	topology *systemtest.Topology
	// shape is the load's size. Default defaultShape.
	shape shape
	// temporal, when set, is the Temporal server of the system (a cluster
	// of the test's own). Default the shared server.
	temporal temporaltest.Frontend
	// system holds further options of the system (a Temporal server or
	// a network of the test's own); runScenario sets ActivityFaults and
	// Topology from the fields above.
	system systemtest.Options
}

// fixture is what a scenario's hooks act on.
type fixture struct {
	t       *testing.T
	sys     *systemtest.System
	l       *load
	checker *checker
	ctx     context.Context
	count   int // faults injected by the hooks
}

// runScenario starts the system, runs the load with the scenario's faults
// and checks the invariants.
func runScenario(t *testing.T, sc scenario) {
	if testing.Short() {
		t.Skip("fault suite: starts worker processes and runs hundreds of sagas")
	}
	start := time.Now()
	deadline := testDeadline
	if sc.topology != nil || sc.temporal != nil {
		// Seven processes and three broker nodes, or five Temporal
		// processes and PostgreSQL, share the cores.
		deadline = clusterTestDeadline
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	opts := sc.system
	opts.ActivityFaults, opts.Topology = sc.activityFaults, sc.topology
	if sc.temporal != nil {
		opts.Temporal = sc.temporal
	}
	sys := systemtest.Start(t, opts)
	if sc.shape == (shape{}) {
		sc.shape = defaultShape
	}
	l := newLoadOf(t, sys, 42, sc.shape)
	l.setUp(ctx)
	f := &fixture{t: t, sys: sys, l: l, ctx: ctx}
	res := &result{test: strings.TrimPrefix(t.Name(), "Test")}
	f.checker = &checker{l: l, ctx: ctx, res: res, metricsBefore: map[string]float64{}, poison: map[string][]string{}, killed: map[*systemtest.Worker]bool{}}
	var hooks []hook
	if sc.hooks != nil {
		hooks = sc.hooks(f)
	}
	l.run(ctx, hooks...)
	t.Logf("load ended after %s", time.Since(start).Round(time.Millisecond))
	f.checker.check()
	res.faults = sc.describe(f)
	res.wall = time.Since(start)
	table.mu.Lock()
	table.rows = append(table.rows, *res)
	table.mu.Unlock()
	t.Logf("%+v", *res)
}

func TestBrokerConnectionsDropped(t *testing.T) {
	runScenario(t, scenario{
		hooks: func(f *fixture) []hook {
			var hs []hook
			for _, at := range []float64{0.15, 0.4, 0.65} {
				hs = append(hs, hook{name: "close_all_connections", after: at, run: func() {
					f.sys.DropConnections()
					f.count++
				}})
			}
			return hs
		},
		describe: func(f *fixture) string { return fmt.Sprintf("%d connection drops", f.count) },
	})
}

func TestBrokerRestart(t *testing.T) {
	runScenario(t, scenario{
		hooks: func(f *fixture) []hook {
			return []hook{{name: "broker restart", after: 0.3, run: func() {
				f.sys.RestartBroker()
				f.count++
			}}}
		},
		describe: func(f *fixture) string { return fmt.Sprintf("%d broker restart", f.count) },
	})
}

func TestWorkerKilled(t *testing.T) {
	runScenario(t, scenario{
		hooks: func(f *fixture) []hook {
			return []hook{{name: "SIGKILL of the worker", after: 0.35, run: func() {
				ws := f.sys.Workers()
				w := ws[len(ws)-1]
				// Its counters die with it: keep what it counted so far.
				f.checker.kill(w)
				f.count++
				f.sys.StartWorker()
			}}}
		},
		describe: func(f *fixture) string { return fmt.Sprintf("%d SIGKILL + restart", f.count) },
	})
}

func TestActivityFaults(t *testing.T) {
	// Transient faults hit every activity; permanent ones the steps that
	// command a participant, whose failure the sagas compensate. (A publish
	// retries until the broker takes it: only a malformed event fails it
	// for good, which is a bug to fix, not a fault to survive.)
	cfg := faults.Config{Transient: 0.1, Permanent: 0.03, Seed: 42, PermanentActivities: []string{
		"Withdraw", "Deposit", "Refund", "ReserveInventory", "CommitInventory", "ReleaseInventory",
	}}
	runScenario(t, scenario{
		activityFaults: cfg,
		describe: func(f *fixture) string {
			m := f.checker.metrics
			transient := int64(m[`sagaflow_injected_activity_faults_total{kind="transient"}`])
			permanent := int64(m[`sagaflow_injected_activity_faults_total{kind="permanent"}`])
			// The worker built with the tag faults injected both kinds.
			require.Positive(f.t, transient, "transient activity faults injected")
			require.Positive(f.t, permanent, "permanent activity faults injected")
			return fmt.Sprintf("%d transient + %d permanent activity faults", transient, permanent)
		},
	})
}

func TestPoisonMessages(t *testing.T) {
	runScenario(t, scenario{
		hooks: func(f *fixture) []hook {
			var hs []hook
			for _, at := range []float64{0.2, 0.45, 0.7} {
				hs = append(hs, hook{name: "poison messages", after: at, run: func() {
					f.count += sendPoison(f)
					// The consumers are still consuming: a poison message
					// stops none of them.
					ws := f.sys.Workers()
					require.NoError(f.t, healthy(ws[len(ws)-1].HTTPAddr))
				}})
			}
			return hs
		},
		describe: func(f *fixture) string { return fmt.Sprintf("%d poison messages", f.count) },
	})
}

// poisonMessage is a message no consumer can take, and the consumer queues
// that must dead-letter it.
type poisonMessage struct {
	msg   amqp.Message
	queue []string
}

// envelopeJSON is an envelope with any type and data, valid or not.
func envelopeJSON(id, typ, data string) []byte {
	return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"faulttest","type":%q,"time":%q,"datacontenttype":"application/json","dataversion":1,"data":%s}`,
		id, typ, time.Now().UTC().Format(time.RFC3339Nano), data))
}

// sendPoison publishes one of each kind of poison message, to the event
// exchange and to the command queues, and records where each must end.
func sendPoison(f *fixture) int {
	const (
		bridgeQ     = "bridge"
		projectionQ = "orders-projection"
		notifyQ     = "notifications"
	)
	event := func(rk, contentType string, body func(id string) []byte, queues ...string) poisonMessage {
		id := uuid.NewString()
		return poisonMessage{msg: amqp.Message{Exchange: amqp.DefaultExchange, RoutingKey: rk, ID: id, Type: rk, ContentType: contentType, Body: body(id)}, queue: queues}
	}
	command := func(queue string, body func(id string) []byte, typ string) poisonMessage {
		id := uuid.NewString()
		return poisonMessage{msg: amqp.Message{Exchange: "", RoutingKey: queue, ID: id, Type: typ, ContentType: events.ContentTypeJSON, Body: body(id)}, queue: []string{queue}}
	}
	raw := func(s string) func(string) []byte { return func(string) []byte { return []byte(s) } }
	env := func(typ, data string) func(string) []byte {
		return func(id string) []byte { return envelopeJSON(id, typ, data) }
	}
	msgs := []poisonMessage{
		// Bad JSON.
		event(events.TypeOrderPlaced, events.ContentTypeJSON, raw(`{"specversion":"1.0","id":`), bridgeQ, projectionQ, notifyQ),
		// An invalid payload: a negative quantity, a total that is not the sum.
		event(events.TypeOrderPlaced, events.ContentTypeJSON, env(events.TypeOrderPlaced,
			`{"order_id":"poison","customer_id":"c-1","merchant_id":"m-1","lines":[{"sku":"sku-1","quantity":-2,"unit_price":100}],"currency":"EUR","total":7}`),
			bridgeQ, projectionQ, notifyQ),
		// An unknown type.
		event("order.exploded", events.ContentTypeJSON, env("order.exploded", `{"order_id":"poison"}`), projectionQ, notifyQ),
		// Data of the wrong shape.
		event(events.TypeOrderCancelRequested, events.ContentTypeJSON, env(events.TypeOrderCancelRequested, `"cancel it"`), bridgeQ, projectionQ, notifyQ),
		// Wrong content: not JSON at all.
		event(events.TypeInventoryReserved, "text/xml", raw(`<reserved sku="sku-1"/>`), projectionQ, notifyQ),
		event(events.TypeFundsWithdrawn, "application/octet-stream", raw("\x00\x01\xfe\xff"), notifyQ),
		event(events.TypeTransferCompleted, events.ContentTypeJSON, raw(`null`), notifyQ),
		// Commands: bad JSON, an unknown command, an invalid payload.
		command(contract.LedgerQueue, raw(`{{{`), events.CmdLedgerWithdraw),
		command(contract.LedgerQueue, env("ledger.explode", `{"account_id":"c-1"}`), "ledger.explode"),
		command(contract.LedgerQueue, env(events.CmdLedgerWithdraw, `{"amount":{"amount":10,"currency":"EUR"}}`), events.CmdLedgerWithdraw),
		command(contract.InventoryQueue, raw(`[1,2,`), events.CmdInventoryReserve),
		command(contract.InventoryQueue, env(events.CmdInventoryReserve, `{"reservation_id":"","lines":"none"}`), events.CmdInventoryReserve),
	}
	for _, p := range msgs {
		for {
			pctx, cancel := context.WithTimeout(f.ctx, 15*time.Second)
			err := f.sys.Publisher.Publish(pctx, p.msg)
			cancel()
			if err == nil {
				break
			}
			require.NoError(f.t, f.ctx.Err(), "publish poison %s: %v", p.msg.ID, err)
		}
		for _, q := range p.queue {
			f.checker.poison[q] = append(f.checker.poison[q], p.msg.ID)
		}
	}
	return len(msgs)
}
