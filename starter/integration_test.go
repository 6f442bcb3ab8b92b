package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/sagastats"
	"github.com/sagaflow/sagaflow/internal/systemtest"
)

// liveSystem is the whole system (internal/systemtest: the dev server, a
// RabbitMQ vhost of the test's own and a real worker process with every
// part) and the global flags pointing the CLI at it.
type liveSystem struct {
	*systemtest.System
	args []string
}

func startLiveSystem(t *testing.T) *liveSystem {
	t.Helper()
	sys := systemtest.Start(t, systemtest.Options{})
	return &liveSystem{System: sys, args: []string{
		"--address", sys.TemporalAddress, "--namespace", "default", "--task-queue", sys.TaskQueue,
		"--amqp-url", sys.AMQPURL, "--ui-url", "http://ui.test", "--timeout", "60s",
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
	var acc contract.Account
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
	var stock []contract.StockLevel
	require.NoError(t, json.Unmarshal([]byte(out), &stock))
	require.Equal(t, []contract.StockLevel{{SKU: sku, OnHand: 7, Available: 7}}, stock)
	_, errOut = s.cli(t, exitFailure, "stock", "show", "pear-"+suffix)
	require.Contains(t, errOut, "unknown_sku")

	// A small load: every saga ends, the failing ones by compensating.
	out, errOut = s.cli(t, exitOK, "load", "--sagas", "6", "--concurrency", "3", "--mix", "transfer", "--failure-rate", "1", "--json")
	var ls loadStats
	require.NoError(t, json.Unmarshal([]byte(out), &ls), out)
	require.Equal(t, loadTypeStats{Counts: sagastats.Counts{Count: 6, Compensated: 6}}, withoutTimings(ls.ByType[loadTransfer]))
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

// TestCLIOrdersEventsAndDeadLetters drives the order saga from the CLI (a
// direct start, an event through the bridge, a cancel), reads the orders read
// model, and browses and redrives dead letters.
func TestCLIOrdersEventsAndDeadLetters(t *testing.T) {
	s := startLiveSystem(t)
	suffix := strings.ToLower(newID())
	cust, shop, sku := "cust-"+suffix, "shop-"+suffix, "apple-"+suffix
	s.cli(t, exitOK, "account", "open", cust, "--initial", "50.00")
	s.cli(t, exitOK, "account", "open", shop)
	s.cli(t, exitOK, "stock", "add", sku, "--quantity", "5")

	out, _ := s.cli(t, exitOK, "order", "--id", "o1-"+suffix, "--customer", cust, "--merchant", shop,
		"--line", sku+":2:150", "--wait", "--json")
	var o1 started
	require.NoError(t, json.Unmarshal([]byte(out), &o1))
	require.Equal(t, "order-o1-"+suffix, o1.WorkflowID)
	require.JSONEq(t, `"confirmed"`, string(mustField(t, o1.Result, "outcome")))

	out, _ = s.cli(t, exitOK, "publish", "--id", "o2-"+suffix, "--customer", cust, "--merchant", shop,
		"--line", sku+":1:150", "--wait")
	require.Contains(t, out, "the bridge starts order-o2-"+suffix)
	require.Contains(t, out, `"outcome":"confirmed"`)

	// A malformed order line is bad input, not a saga.
	_, errOut := s.cli(t, exitUsage, "order", "--customer", cust, "--merchant", shop, "--line", sku+":two:150")
	require.True(t, strings.HasPrefix(errOut, "starter: "), errOut)

	// The read model catches up asynchronously: poll it.
	require.Eventually(t, func() bool {
		code, out, _ := runCLI(t, nil, append([]string{"orders", "--customer", cust, "--status", "confirmed", "--json"}, s.args...)...)
		return code == exitOK && strings.Contains(out, "o1-"+suffix) && strings.Contains(out, "o2-"+suffix)
	}, 30*time.Second, 200*time.Millisecond)

	out, _ = s.cli(t, exitOK, "stock", "show", sku, "--json")
	var stock []contract.StockLevel
	require.NoError(t, json.Unmarshal([]byte(out), &stock))
	require.Equal(t, []contract.StockLevel{{SKU: sku, OnHand: 2, Available: 2}}, stock)

	// Cancelling a confirmed order is refused with a clear error.
	_, errOut = s.cli(t, exitFailure, "cancel", "order-o1-"+suffix, "--reason", "too late")
	require.Contains(t, errOut, "order-o1-"+suffix+" has ended (status Completed, saga Completed) and can no longer be cancelled")

	// An invalid order.placed lands in the bridge's dead letters, with its
	// reason; redriving it sends it back (and it fails again, as it must).
	bad := `{"specversion":"1.0","id":"bad-` + suffix + `","source":"test","type":"order.placed","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","dataversion":2,"data":{"order_id":"x","customer_id":"a","merchant_id":"b","lines":[],"currency":"EUR","total":1}}`
	require.NoError(t, s.Publisher.Publish(t.Context(), amqpMessage("order.placed", "bad-"+suffix, bad)))
	require.Eventually(t, func() bool {
		code, out, _ := runCLI(t, nil, append([]string{"dead-letters", "list", "bridge"}, s.args...)...)
		return code == exitOK && strings.Contains(out, "bad-"+suffix)
	}, 30*time.Second, 200*time.Millisecond)
	out, _ = s.cli(t, exitOK, "dead-letters", "show", "bridge", "bad-"+suffix)
	require.Contains(t, out, "lines")
	out, _ = s.cli(t, exitOK, "dead-letters", "redrive", "bridge", "bad-"+suffix)
	require.Contains(t, out, "bad-"+suffix)
}

// TestDemo runs the demo against the system: every saga of the mix ends as
// the demo means it to.
func TestDemo(t *testing.T) {
	s := startLiveSystem(t)
	out, errOut := s.cli(t, exitOK, "demo", "--worker-health", "")
	t.Logf("starter demo:\n%s", out)
	require.Empty(t, errOut)
	for _, want := range []string{
		"transfer 25.00 alice → bob                 completed",
		"transfer 500.00 bob → alice (overdraws)    failed       insufficient_funds",
		"transfer 10.00 alice → carol (closed)      compensated  account_closed",
		"order: 2 apples + 1 pear for alice         confirmed",
		"order: 5 pears (2 in stock)                cancelled    insufficient_stock",
		"order: 60.00 of apples for bob (too poor)  cancelled    insufficient_funds",
		"order.placed event → bridge → order saga   confirmed",
	} {
		require.Contains(t, out, want)
	}
	require.Regexp(t, `order: cancelled by alice\s+(cancelled\s+changed my mind|confirmed)`, out)
}

func amqpMessage(routingKey, id, body string) amqp.Message {
	return amqp.Message{Exchange: amqp.DefaultExchange, RoutingKey: routingKey, ID: id, Type: routingKey,
		ContentType: "application/json", Body: []byte(body)}
}
