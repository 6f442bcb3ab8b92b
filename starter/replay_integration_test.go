package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/replay"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/workflows"
)

// replayStandIns stand in for the inventory, the ledger and the broker
// with activities of the same names: withdrawals over 10000 are refused.
type replayStandIns struct{}

func (replayStandIns) ReserveInventory(context.Context, activities.InventoryCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdInventoryReserve}, nil
}

func (replayStandIns) CommitInventory(context.Context, activities.InventoryCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdInventoryCommit}, nil
}

func (replayStandIns) ReleaseInventory(context.Context, activities.InventoryCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdInventoryRelease}, nil
}

func (replayStandIns) Withdraw(_ context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	if cmd.Amount > 10000 {
		return activities.CommandResult{}, activities.RejectionError(events.Reply{
			CommandID: "c", CommandType: events.CmdLedgerWithdraw, Status: events.ReplyRejected, Reason: events.ReasonInsufficientFunds,
		})
	}
	return activities.CommandResult{CommandType: events.CmdLedgerWithdraw}, nil
}

func (replayStandIns) Deposit(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdLedgerDeposit}, nil
}

func (replayStandIns) Refund(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdLedgerRefund}, nil
}

func (replayStandIns) PublishTransferEvent(context.Context, activities.TransferEvent) error {
	return nil
}
func (replayStandIns) PublishReservationFailed(context.Context, activities.ReservationFailedEvent) error {
	return nil
}
func (replayStandIns) PublishOrderEvent(context.Context, activities.OrderEvent) error { return nil }

// sagaWorker runs the sagas with stand-in activities on a fresh task queue
// of the shared dev server, its client encoding payloads with cdc (nil:
// plaintext). It returns the client and the queue.
func sagaWorker(t *testing.T, cdc *codec.Codec) (client.Client, string) {
	t.Helper()
	srv := temporaltest.Server(t)
	queue := temporaltest.TaskQueue(t)
	opts := client.Options{HostPort: srv.FrontendHostPort(), Namespace: "default",
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if cdc != nil {
		opts.DataConverter, opts.FailureConverter = cdc.DataConverter(), cdc.FailureConverter()
	}
	c, err := client.Dial(opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	w := worker.New(c, queue, worker.Options{})
	workflows.Register(w)
	w.RegisterActivity(&replayStandIns{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return c, queue
}

// runOrders runs one confirmed and one refused order per entry of ids and
// waits for them; it returns their workflow ids.
func runOrders(t *testing.T, c client.Client, queue string, ids ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wfs []string
	for i, id := range ids {
		order := events.OrderPlaced{
			OrderID: id, CustomerID: "cust", MerchantID: "shop", Currency: "EUR",
			Lines: []events.OrderLine{{SKU: "sku-a", Quantity: 1, UnitPrice: 2500}}, Total: 2500,
		}
		want := contract.OrderConfirmed
		if i%2 == 1 {
			order.Lines[0].UnitPrice, order.Total = 25000, 25000 // refused, then released
			want = contract.OrderCancelled
		}
		run, err := c.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, queue), contract.OrderWorkflowType, order)
		require.NoError(t, err)
		var res contract.OrderResult
		require.NoError(t, run.Get(ctx, &res))
		require.Equal(t, want, res.Outcome, res.Error)
		wfs = append(wfs, run.GetID())
	}
	return wfs
}

func serverArgs(t *testing.T) []string {
	return []string{"--address", temporaltest.Server(t).FrontendHostPort(), "--namespace", "default", "--timeout", "60s"}
}

// TestReplayLiveSagas replays sagas just run on the dev server, selected by
// a visibility query, limited, as JSON, and by the default query; an
// incompatible OrderWorkflow fails on them.
func TestReplayLiveSagas(t *testing.T) {
	c, queue := sagaWorker(t, nil)
	suffix := strings.ToLower(newID())
	orders := runOrders(t, c, queue, "rl-1-"+suffix, "rl-2-"+suffix, "rl-3-"+suffix, "rl-4-"+suffix)
	// A reservation holding its stock: an open saga.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := contract.ReservationInput{ReservationID: "rl-held-" + suffix, OrderID: "rl-held-" + suffix,
		Lines: []events.StockLine{{SKU: "sku-a", Quantity: 1}}, TTL: time.Hour}
	open, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.ReservationWorkflowID(held.ReservationID), TaskQueue: queue},
		contract.ReservationWorkflowType, held)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), open.GetID(), "", "test over") })
	waitFor(t, "the reservation holds its stock", func() bool {
		v, err := c.QueryWorkflow(ctx, open.GetID(), "", contract.QueryStatus)
		var st contract.ReservationState
		return err == nil && v.Get(&st) == nil && st.Hold == contract.HoldHeld
	})

	ofQueue := `TaskQueue = '` + queue + `'`
	// Visibility is eventually consistent: wait until it lists them all.
	waitFor(t, "visibility lists the sagas", func() bool {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: ofQueue})
		return err == nil && resp.GetCount() >= int64(len(orders)*2+1)
	})

	args := serverArgs(t)
	query := `WorkflowType = 'OrderWorkflow' AND ` + ofQueue
	code, out, errOut := runCLI(t, nil, append([]string{"replay", "--query", query}, args...)...)
	require.Equal(t, exitOK, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "replayed 4 histories from namespace default: 4 passed, 0 failed")
	require.Regexp(t, `OrderWorkflow +4 replayed +4 passed +0 failed`, out)

	doc, _ := replayDoc(t, exitOK, append([]string{"--query", query, "--limit", "3", "--concurrency", "2"}, args...)...)
	require.True(t, doc.OK)
	require.Equal(t, "server", doc.Source)
	require.Equal(t, query, doc.Query)
	require.Equal(t, 3, doc.Replayed)
	require.Equal(t, 3, doc.ByType[contract.OrderWorkflowType].Passed)

	// Every saga of the queue: orders, their payments, the open
	// reservation (an order holds its stock itself).
	doc, _ = replayDoc(t, exitOK, append([]string{"--query", ofQueue}, args...)...)
	require.Equal(t, len(orders)*2+1, doc.Replayed)
	require.Equal(t, 1, doc.ByType[contract.ReservationWorkflowType].Passed)
	require.Equal(t, len(orders), doc.ByType[contract.TransferWorkflowType].Passed) // the payments; no order needed a refund

	// The default query: open sagas and those closed in the last 7 days,
	// of every test on the package's dev server. Only the codec tests' sagas,
	// encrypted under keys this run does not have, may fail, and only as
	// encrypted.
	code, out, errOut = runCLI(t, nil, append([]string{"replay", "--json"}, args...)...)
	require.Contains(t, []int{exitOK, exitFailure}, code, "stdout: %s\nstderr: %s", out, errOut)
	doc = replayDocument{}
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	require.Contains(t, doc.Query, "ExecutionStatus = 'Running' OR CloseTime >= ")
	require.GreaterOrEqual(t, doc.Passed, len(orders)*2+1, "this test's sagas pass")
	for _, typ := range []string{contract.OrderWorkflowType, contract.ReservationWorkflowType, contract.TransferWorkflowType} {
		require.Positive(t, doc.ByType[typ].Passed, typ)
	}
	for _, f := range doc.Failures {
		require.Equal(t, replay.KindEncrypted, f.Kind, "%s: %s", f.WorkflowID, f.Error)
		require.NotContains(t, f.WorkflowID, suffix, "none of this test's sagas fails")
	}

	// The gate on live histories: an unversioned change fails every order.
	withOrderWorkflow(t, announcingOrder)
	code, out, errOut = runCLI(t, nil, append([]string{"replay", "--query", query}, args...)...)
	require.Equal(t, exitFailure, code, "stdout: %s\nstderr: %s", out, errOut)
	for _, id := range orders {
		require.Regexp(t, `(?m)^FAIL `+id+` \(OrderWorkflow, run [0-9a-f-]+\): \[TMPRL1100\] `, out)
	}
	require.Equal(t, "starter: 4 of 4 histories failed to replay\n", errOut)
}

func TestReplayBadQuery(t *testing.T) {
	code, out, errOut := runCLI(t, nil, append([]string{"replay", "--query", "WorkflowType = "}, serverArgs(t)...)...)
	require.Equal(t, exitUsage, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, `starter: --query "WorkflowType = ": `)
}

// TestReplayEncryptedHistory records an order with the codec on, exports
// its history with the Temporal CLI, and replays it: with the keys it
// passes. Replay does decode payloads: without the keys the workflow
// cannot read its input and ends early, which the SDK reports as a
// non-determinism error; replay names the key it needs instead.
func TestReplayEncryptedHistory(t *testing.T) {
	cli, ok := temporaltest.CLIPath()
	if !ok {
		t.Skip("no Temporal CLI")
	}
	keys := writeKeys(t, "k1")
	cdc, err := codec.Load(codec.Config{KeysFile: keys})
	require.NoError(t, err)
	c, queue := sagaWorker(t, cdc)
	suffix := strings.ToLower(newID())
	wfs := runOrders(t, c, queue, "enc-1-"+suffix, "enc-2-"+suffix)
	addr := temporaltest.Server(t).FrontendHostPort()

	dir := t.TempDir()
	for _, id := range wfs {
		raw := showHistory(t, cli, addr, id)
		require.Contains(t, raw, `"eventType": "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"`, "the CLI's format")
		require.NotContains(t, raw, "cust", "encrypted")
		require.NoError(t, os.WriteFile(filepath.Join(dir, id+".json"), []byte(raw), 0o644))
	}
	// The whole sagas: the payments' histories too (an order holds its
	// stock itself).
	ofQueue := `TaskQueue = '` + queue + `'`
	const sagaWorkflows = 4

	doc, _ := replayDoc(t, exitOK, "--codec-keys", keys, dir)
	require.Equal(t, 2, doc.Passed)

	code, out, errOut := runCLI(t, nil, "replay", dir)
	require.Equal(t, exitFailure, code, "stdout: %s\nstderr: %s", out, errOut)
	for _, id := range wfs {
		require.Regexp(t, `(?m)^FAIL `+id+` \(OrderWorkflow, run [0-9a-f-]+, `+regexp.QuoteMeta(filepath.Join(dir, id+".json"))+`\): payloads are encrypted with key k1 and no key is configured: set SAGAFLOW_CODEC_KEYS \(--codec-keys\) to a key file holding it \(replay: `, out)
	}
	require.Contains(t, out, "[TMPRL1100]", "what the SDK reports")

	other := writeKeys(t, "k2")
	_, out, _ = runCLI(t, nil, "replay", "--codec-keys", other, dir)
	require.Contains(t, out, "payloads are encrypted with key k1 and the configured keys are k2")

	// From the server, the same.
	waitFor(t, "visibility lists the sagas", func() bool {
		resp, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: ofQueue})
		return err == nil && resp.GetCount() >= sagaWorkflows
	})
	doc, _ = replayDoc(t, exitOK, append([]string{"--codec-keys", keys, "--query", ofQueue}, serverArgs(t)...)...)
	require.Equal(t, sagaWorkflows, doc.Passed)
	doc, _ = replayDoc(t, exitFailure, append([]string{"--query", ofQueue}, serverArgs(t)...)...)
	require.Equal(t, sagaWorkflows, doc.Failed)
	for _, f := range doc.Failures {
		require.Equal(t, "encrypted", string(f.Kind), f.Error)
	}
}

// waitFor polls cond until it holds, within a minute: for what only the
// server knows (visibility, a workflow's state).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		<-time.After(50 * time.Millisecond)
	}
}
