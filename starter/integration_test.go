package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/services/inventory"
	"github.com/sagaflow/sagaflow/services/ledger"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/workflows"
)

// liveSystem is the system the CLI drives in the integration test: the
// shared Temporal dev server with a worker as worker/serve.go wires it, the
// ledger and inventory services on SQLite, the reply consumer, and a
// subscriber to the sagas' outcome events, on queues unique to the test.
type liveSystem struct {
	args []string // global flags pointing the CLI at the system
}

func startLiveSystem(t *testing.T) *liveSystem {
	t.Helper()
	b := testenv.NewBroker(t)
	srv := temporaltest.Server(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ledgerQueue, inventoryQueue := b.Name("ledger"), b.Name("inventory")
	replyQueue, eventsQueue := b.Name("replies"), b.Name("events")

	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var closers []func() error
	t.Cleanup(func() {
		stop()
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	})
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(runCtx); err != nil && runCtx.Err() == nil {
				t.Errorf("%s stopped: %v", name, err)
			}
		}()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, amqp.Config{URL: b.URL, ConnectionName: t.Name()})
	require.NoError(t, err)
	closers = append(closers, conn.Close)

	ldb, err := store.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	require.NoError(t, err)
	closers = append(closers, ldb.Close)
	led, err := ledger.New(ldb, ledger.Config{Queue: ledgerQueue})
	require.NoError(t, err)
	run("ledger", func(ctx context.Context) error { return led.Run(ctx, conn) })

	idb, err := store.Open(ctx, filepath.Join(t.TempDir(), "inventory.db"))
	require.NoError(t, err)
	closers = append(closers, idb.Close)
	inv, err := inventory.New(idb, inventory.Config{Queue: inventoryQueue})
	require.NoError(t, err)
	run("inventory", func(ctx context.Context) error { return inv.Run(ctx, conn) })

	pub, err := conn.NewPublisher(amqp.PublisherConfig{})
	require.NoError(t, err)
	closers = append(closers, pub.Close)
	acts, err := activities.New(activities.Config{ReplyQueue: replyQueue, LedgerQueue: ledgerQueue}, pub, srv.Client(), quiet)
	require.NoError(t, err)
	replies, err := conn.NewConsumer(amqp.ConsumerConfig{Name: replyQueue, Exchange: ""}, acts.HandleReply)
	require.NoError(t, err)
	run("reply consumer", replies.Run)
	// The sagas publish their outcome events with the mandatory flag: a
	// subscriber must be bound, as the notifications consumer is in a
	// deployment.
	outcomes, err := conn.NewConsumer(amqp.ConsumerConfig{Name: eventsQueue, Bindings: []string{"transfer.#"}},
		func(context.Context, amqp.Delivery) error { return nil })
	require.NoError(t, err)
	run("outcome subscriber", outcomes.Run)
	for _, q := range []string{ledgerQueue, inventoryQueue, replyQueue, eventsQueue} {
		b.WaitConsumer(q)
	}

	_, taskQueue := temporaltest.NewWorker(t, func(w worker.Worker) {
		workflows.Register(w)
		w.RegisterActivity(acts)
	})
	return &liveSystem{args: []string{
		"--address", srv.FrontendHostPort(), "--namespace", "default", "--task-queue", taskQueue,
		"--amqp-url", b.URL, "--ledger-queue", ledgerQueue, "--inventory-queue", inventoryQueue,
		"--ui-url", "http://ui.test", "--timeout", "60s",
	}}
}

// cli runs the command line against the system and requires exit code want.
func (s *liveSystem) cli(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	code, out, errOut := runCLI(t, nil, append(args, s.args...)...)
	require.Equal(t, want, code, "starter %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	return out, errOut
}

func TestCLIAgainstTheLiveSystem(t *testing.T) {
	s := startLiveSystem(t)
	suffix := strings.ToLower(newID())
	alice, bob := "alice-"+suffix, "bob-"+suffix

	out, _ := s.cli(t, exitOK, "account", "open", alice, "--currency", "EUR", "--owner", "Alice", "--initial", "100.00")
	require.Contains(t, out, "account "+alice+": balance 100.00 EUR, status open")
	s.cli(t, exitOK, "account", "open", bob)
	out, _ = s.cli(t, exitOK, "account", "deposit", alice, "--amount", "12.50")
	require.Contains(t, out, "balance 112.50 EUR")

	// Rejections by the service are one-line runtime errors.
	_, errOut := s.cli(t, exitFailure, "account", "balance", "nobody-"+suffix)
	require.Contains(t, errOut, "starter: ledger rejected ledger.balance: unknown_account")
	_, errOut = s.cli(t, exitFailure, "account", "deposit", alice, "--amount", "5", "--currency", "USD")
	require.Contains(t, errOut, "starter: ledger rejected ledger.deposit: currency_mismatch")

	// A transfer, waited for; the start prints the id and the Web UI link.
	id := "t-" + suffix
	wf := "transfer-" + id
	out, _ = s.cli(t, exitOK, "transfer", "--from", alice, "--to", bob, "--amount", "2500", "--id", id, "--wait")
	require.Contains(t, out, "Started "+wf)
	require.Contains(t, out, "http://ui.test/namespaces/default/workflows/"+wf)
	require.Contains(t, out, `"outcome":"completed"`)

	// The same transfer id again: the saga ran and its id is not reused.
	_, errOut = s.cli(t, exitFailure, "transfer", "--from", alice, "--to", bob, "--amount", "2500", "--id", id)
	require.Contains(t, errOut, wf+" already ran (status Completed")

	out, _ = s.cli(t, exitOK, "account", "balance", bob, "--json")
	var acc ledger.Account
	require.NoError(t, json.Unmarshal([]byte(out), &acc))
	require.EqualValues(t, 2500, acc.Balance)

	// The statement links each change to the saga that caused it.
	out, _ = s.cli(t, exitOK, "account", "statement", alice)
	require.Contains(t, out, "-25.00 EUR")
	require.Contains(t, out, "87.50 EUR")
	require.Contains(t, out, wf+"  (starter history "+wf+")")
	out, _ = s.cli(t, exitOK, "account", "statement", alice, "--json")
	var st struct {
		Lines []statementLine `json:"lines"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Len(t, st.Lines, 3)
	require.Equal(t, wf, st.Lines[2].Saga)
	require.EqualValues(t, -2500, st.Lines[2].Amount)

	// The audit trail: the steps in order, then the outcome.
	out, _ = s.cli(t, exitOK, "history", wf)
	t.Logf("starter history %s:\n%s", wf, out)
	requireInOrder(t, out, "started       TransferWorkflow", "status        Running", "step          withdraw [Withdraw]",
		"→ completed", "step          deposit [Deposit]", "step          publish-outcome", "status        Completed",
		"closed        Completed")
	out, _ = s.cli(t, exitOK, "history", wf, "--json")
	var tl struct {
		Status  string `json:"status"`
		Records []struct {
			Kind, Name, Outcome string
		} `json:"records"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &tl))
	require.Equal(t, "Completed", tl.Status)
	var steps []string
	for _, r := range tl.Records {
		if r.Kind == "step" {
			steps = append(steps, r.Name+":"+r.Outcome)
		}
	}
	require.Equal(t, []string{"withdraw:completed", "deposit:completed", "publish-outcome:completed"}, steps)

	out, _ = s.cli(t, exitOK, "status", wf)
	require.Contains(t, out, "status:  Completed, saga Completed")
	require.Contains(t, out, `completed_steps: ["withdraw","deposit"]`)

	// An overdraw ends the saga without moving money.
	bad := "bad-" + suffix
	out, _ = s.cli(t, exitOK, "transfer", "--from", bob, "--to", alice, "--amount", "999.00", "--id", bad, "--wait", "--json")
	var res started
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "transfer-"+bad, res.WorkflowID)
	require.JSONEq(t, `"insufficient_funds"`, string(mustField(t, res.Result, "reason")))

	// Visibility is eventually consistent: poll until the saga is listed.
	require.Eventually(t, func() bool {
		code, out, _ := runCLI(t, nil, append([]string{"list", "--status", "Completed", "--type", "TransferWorkflow", "--json"}, s.args...)...)
		return code == exitOK && strings.Contains(out, `"workflow_id": "`+wf+`"`)
	}, 20*time.Second, 200*time.Millisecond)

	// Stock through the inventory service.
	sku := "apple-" + suffix
	out, _ = s.cli(t, exitOK, "stock", "add", sku, "--quantity", "7")
	require.Contains(t, out, sku)
	out, _ = s.cli(t, exitOK, "stock", "show", sku, "--json")
	var stock []inventory.Stock
	require.NoError(t, json.Unmarshal([]byte(out), &stock))
	require.Equal(t, []inventory.Stock{{SKU: sku, OnHand: 7, Available: 7}}, stock)
	_, errOut = s.cli(t, exitFailure, "stock", "show", "pear-"+suffix)
	require.Contains(t, errOut, "unknown_sku")

	// A small load: every saga ends, the failing ones by compensating.
	out, errOut = s.cli(t, exitOK, "load", "--sagas", "6", "--concurrency", "3", "--mix", "transfer", "--failure-rate", "1", "--json")
	var ls loadStats
	require.NoError(t, json.Unmarshal([]byte(out), &ls), out)
	require.Equal(t, loadTypeStats{Count: 6, Compensated: 6}, withoutTimings(ls.ByType[loadTransfer]))
	require.Contains(t, errOut, "6/6 sagas", "progress lines on a pipe")
	out, _ = s.cli(t, exitOK, "load", "--sagas", "4", "--concurrency", "2")
	require.Contains(t, out, "completed 4, compensated 0, failed 0")
}

func withoutTimings(s loadTypeStats) loadTypeStats {
	s.P50ms, s.P95ms, s.P99ms, s.Throughput = 0, 0, 0, 0
	return s
}

func mustField(t *testing.T, raw json.RawMessage, field string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return m[field]
}

// requireInOrder checks that the parts appear in s in this order.
func requireInOrder(t *testing.T, s string, parts ...string) {
	t.Helper()
	rest := s
	for _, p := range parts {
		i := strings.Index(rest, p)
		require.GreaterOrEqual(t, i, 0, "%q missing (or out of order) in:\n%s", p, s)
		rest = rest[i+len(p):]
	}
}
