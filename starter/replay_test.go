package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/workflows"
)

// recordedHistories is the folder of the sagas' recorded histories.
const recordedHistories = "../workflows/testdata"

func recordedFiles(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(recordedHistories, pattern))
	require.NoError(t, err)
	require.NotEmpty(t, files, pattern)
	return files
}

// progressLines are the progress lines replay writes to stderr once a
// second.
var progressLines = regexp.MustCompile(`(?m)^replay: \d+/\d+ histories, \d+ failed\n`)

// replayDoc runs replay --json and decodes its document.
func replayDoc(t *testing.T, wantCode int, args ...string) (replayDocument, string) {
	t.Helper()
	code, out, errOut := runCLI(t, nil, append([]string{"replay", "--json"}, args...)...)
	require.Equal(t, wantCode, code, "stdout: %s\nstderr: %s", out, errOut)
	var doc replayDocument
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	return doc, errOut
}

func TestReplayRecordedHistoriesPass(t *testing.T) {
	all := recordedFiles(t, "*.json")
	code, out, errOut := runCLI(t, nil, "replay", recordedHistories)
	require.Equal(t, exitOK, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "replayed "+strconv.Itoa(len(all))+" histories from files: "+strconv.Itoa(len(all))+" passed, 0 failed")
	require.Regexp(t, `OrderWorkflow +\d+ replayed +\d+ passed +0 failed`, out)
	require.Regexp(t, `ReserveInventoryWorkflow +\d+ replayed`, out)
	require.Regexp(t, `TransferWorkflow +\d+ replayed`, out)
	// On a slow machine a second can pass: then stderr has progress lines,
	// and nothing else.
	require.Empty(t, progressLines.ReplaceAllString(errOut, ""))

	doc, _ := replayDoc(t, exitOK, "--file", all[0], all[1])
	require.True(t, doc.OK)
	require.Equal(t, "files", doc.Source)
	require.Equal(t, 2, doc.Replayed)
	require.Equal(t, 2, doc.Passed)
	require.Empty(t, doc.Failures)
}

// acts names the activities in the variants; it is never called.
var acts *activities.Activities

// announce is an activity a new version of OrderWorkflow runs before its
// first step.
func announce(ctx workflow.Context, order events.OrderPlaced) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	return workflow.ExecuteActivity(ctx, acts.PublishOrderEvent, activities.OrderEvent{
		Step: "announce", Type: events.TypeOrderPlaced, OrderID: order.OrderID,
	}).Get(ctx, nil)
}

// announcingOrder is OrderWorkflow with an activity added before the
// first step, unversioned: running orders cannot take this deploy.
func announcingOrder(ctx workflow.Context, order events.OrderPlaced) (contract.OrderResult, error) {
	if err := announce(ctx, order); err != nil {
		return contract.OrderResult{}, err
	}
	return workflows.OrderWorkflow(ctx, order)
}

// patchedAnnouncingOrder is the same change behind workflow.GetVersion:
// orders that started before it keep the old path.
func patchedAnnouncingOrder(ctx workflow.Context, order events.OrderPlaced) (contract.OrderResult, error) {
	if workflow.GetVersion(ctx, "announce-order", workflow.DefaultVersion, 1) == 1 {
		if err := announce(ctx, order); err != nil {
			return contract.OrderResult{}, err
		}
	}
	return workflows.OrderWorkflow(ctx, order)
}

// withOrderWorkflow makes replay check histories against the real sagas
// with order registered as OrderWorkflow, for the test.
func withOrderWorkflow(t *testing.T, order func(workflow.Context, events.OrderPlaced) (contract.OrderResult, error)) {
	prev := registerWorkflows
	t.Cleanup(func() { registerWorkflows = prev })
	registerWorkflows = func(r worker.WorkflowRegistry) {
		r.RegisterWorkflowWithOptions(workflows.TransferWorkflow, workflow.RegisterOptions{Name: contract.TransferWorkflowType})
		r.RegisterWorkflowWithOptions(workflows.ReserveInventoryWorkflow, workflow.RegisterOptions{Name: contract.ReservationWorkflowType})
		r.RegisterWorkflowWithOptions(order, workflow.RegisterOptions{Name: contract.OrderWorkflowType})
	}
}

// TestReplayGateCatchesAnUnversionedChange proves the gate: an
// incompatible OrderWorkflow fails on every recorded order with a
// non-determinism error, and the same change behind workflow.GetVersion
// passes.
func TestReplayGateCatchesAnUnversionedChange(t *testing.T) {
	orders := recordedFiles(t, "order_*.json")
	all := recordedFiles(t, "*.json")

	withOrderWorkflow(t, announcingOrder)
	code, out, errOut := runCLI(t, nil, "replay", recordedHistories)
	require.Equal(t, exitFailure, code, "stdout: %s\nstderr: %s", out, errOut)
	// On a slow machine a second can pass: then stderr has progress lines
	// before the summary.
	errOut = progressLines.ReplaceAllString(errOut, "")
	require.Equal(t, "starter: "+strconv.Itoa(len(orders))+" of "+strconv.Itoa(len(all))+" histories failed to replay\n", errOut)
	var fails []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "FAIL ") {
			fails = append(fails, line)
			require.Regexp(t, `^FAIL order-\S+ \(OrderWorkflow, run [0-9a-f-]+, \.\./workflows/testdata/order_\w+\.json\): \[TMPRL1100\] `, line)
			// TMPRL1100 is the SDK's non-determinism error, whose wording
			// depends on the command the change moved.
		}
	}
	require.Len(t, fails, len(orders))
	require.Regexp(t, `OrderWorkflow +\d+ replayed +0 passed +\d+ failed`, out)

	doc, _ := replayDoc(t, exitFailure, recordedHistories)
	require.False(t, doc.OK)
	require.Len(t, doc.Failures, len(orders))
	for _, f := range doc.Failures {
		require.Equal(t, "nondeterministic", string(f.Kind))
		require.Equal(t, contract.OrderWorkflowType, f.WorkflowType)
		require.NotEmpty(t, f.WorkflowID)
	}
	require.Equal(t, 0, doc.ByType[contract.ReservationWorkflowType].Failed)

	withOrderWorkflow(t, patchedAnnouncingOrder)
	doc, _ = replayDoc(t, exitOK, recordedHistories)
	require.True(t, doc.OK)
	require.Equal(t, len(all), doc.Passed)
}

func TestReplayBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	notHistory := write("config.json", `{"name": "x"}`)
	order, err := os.ReadFile(filepath.Join(recordedHistories, "order_confirmed.json"))
	require.NoError(t, err)
	unknown := write("refund.json", strings.Replace(string(order), `"name": "OrderWorkflow"`, `"name": "RefundWorkflow"`, 1))
	unreadable := write("locked.json", "{}")
	require.NoError(t, os.Chmod(unreadable, 0))
	empty := t.TempDir()

	usage := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{filepath.Join(dir, "nope.json")}, filepath.Join(dir, "nope.json") + ": no such file or directory"},
		{"empty folder", []string{empty}, empty + ": no history files (*.json) in this folder"},
		{"query with files", []string{"--query", "WorkflowType='OrderWorkflow'", notHistory}, "--query and --limit select workflows on the server"},
		{"bad concurrency", []string{"--concurrency", "0", notHistory}, "--concurrency 0: must be between 1 and 64"},
		{"negative limit", []string{"--limit", "-1"}, "--limit -1: must not be negative"},
	}
	for _, tc := range usage {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append([]string{"replay"}, append(tc.args, unreachable...)...)...)
			require.Equal(t, exitUsage, code, "stdout: %s\nstderr: %s", out, errOut)
			require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
			require.Contains(t, errOut, "starter: "+tc.want)
		})
	}

	failures := []struct {
		name, path, want string
	}{
		{"not a history", notHistory, `FAIL ` + notHistory + `: not a workflow history: no "events" in the JSON object`},
		{"unknown workflow type", unknown, `(RefundWorkflow, run 01a2170e-f7e3-710c-b5ed-5fb056dfd4a7, ` + unknown + `): workflow type RefundWorkflow is not in this binary (it knows OrderWorkflow, ReserveInventoryWorkflow, TransferWorkflow)`},
	}
	if os.Geteuid() != 0 { // root reads any file
		failures = append(failures, struct{ name, path, want string }{"unreadable file", unreadable, "FAIL " + unreadable + ": permission denied"})
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "replay", tc.path)
			require.Equal(t, exitFailure, code, "stdout: %s\nstderr: %s", out, errOut)
			require.Contains(t, out, tc.want)
			require.Contains(t, out, "replayed 1 histories from files: 0 passed, 1 failed")
			require.Equal(t, "starter: 1 of 1 histories failed to replay\n", errOut)
		})
	}
}

// TestReplayShowsProgressOnStderr replays enough histories for progress
// lines; they go to stderr, and --json's stdout stays one document.
func TestReplayShowsProgressOnStderr(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(recordedHistories, "reservation_released_by_update.json"))
	require.NoError(t, err)
	dir := t.TempDir()
	const n = 230
	for i := range n {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "h"+strconv.Itoa(i)+".json"), src, 0o644))
	}
	doc, errOut := replayDoc(t, exitOK, dir)
	require.Equal(t, n, doc.Replayed)
	require.Equal(t, n, doc.ByType[contract.ReservationWorkflowType].Passed)
	require.Contains(t, errOut, "replay: 100/230 histories, 0 failed\n")
	require.Contains(t, errOut, "replay: 200/230 histories, 0 failed\n")
	require.NotContains(t, errOut, "230/230")
}

func TestReplayHelp(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "replay", "--help")
	require.Equal(t, exitOK, code, errOut)
	for _, flag := range []string{"--query", "--limit", "--concurrency", "--file", "--json", "--codec-keys", "--address"} {
		require.Contains(t, out, flag)
	}
}

func TestReplayUnreachableServer(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "replay", "--address", "127.0.0.1:1", "--dial-timeout", "300ms")
	require.Equal(t, exitFailure, code)
	require.Empty(t, out)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, "starter: cannot reach Temporal at 127.0.0.1:1 (namespace default)")
}

func TestDefaultReplayQuery(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	require.Equal(t, "WorkflowType IN ('OrderWorkflow', 'ReserveInventoryWorkflow', 'TransferWorkflow') AND (ExecutionStatus = 'Running' OR CloseTime >= '2026-11-19T09:00:00Z')",
		defaultReplayQuery(now))
}
