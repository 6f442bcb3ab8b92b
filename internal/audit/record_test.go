package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/workflows"
)

// TestMain shares one Temporal dev server among the recording tests; the
// timeline tests never start it.
func TestMain(m *testing.M) { temporaltest.Main(m) }

// flakyLedger stands in for the ledger with activities of the same names:
// the first attempt of every withdraw gets no reply, deposits to "closed"
// are rejected, refunds succeed.
type flakyLedger struct{}

func (flakyLedger) Withdraw(ctx context.Context, _ activities.LedgerCommand) (activities.CommandResult, error) {
	if activity.GetInfo(ctx).Attempt == 1 {
		return activities.CommandResult{}, errors.New("no reply from ledger.commands")
	}
	return activities.CommandResult{CommandType: events.CmdLedgerWithdraw}, nil
}

func (flakyLedger) Deposit(_ context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	if cmd.AccountID == "closed" {
		return activities.CommandResult{}, activities.RejectionError(events.Reply{CommandID: "c", CommandType: events.CmdLedgerDeposit,
			Status: events.ReplyRejected, Reason: events.ReasonAccountClosed})
	}
	return activities.CommandResult{CommandType: events.CmdLedgerDeposit}, nil
}

func (flakyLedger) Refund(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdLedgerRefund}, nil
}

func (flakyLedger) PublishTransferEvent(context.Context, activities.TransferEvent) error { return nil }

// auditParentWorkflow exercises what the audit trail shows besides
// activities: an update, a signal racing a long timer, and a child saga.
func auditParentWorkflow(ctx workflow.Context, in contract.TransferInput) (string, error) {
	reason := ""
	if err := workflow.SetUpdateHandler(ctx, "note", func(_ workflow.Context, r string) (string, error) {
		reason = r
		return "noted " + r, nil
	}); err != nil {
		return "", err
	}
	tctx, cancelTimer := workflow.WithCancel(ctx)
	timer := workflow.NewTimer(tctx, time.Hour)
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(timer, func(workflow.Future) {})
	sel.AddReceive(workflow.GetSignalChannel(ctx, "proceed"), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.Select(ctx)
	cancelTimer()
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: contract.TransferWorkflowID(in.TransferID)})
	var res contract.TransferResult
	if err := workflow.ExecuteChildWorkflow(cctx, workflows.TransferWorkflow, in).Get(ctx, &res); err != nil {
		return "", err
	}
	return string(res.Outcome) + " " + reason, nil
}

// TestRecordHistories runs the sagas above on a dev server and stores their
// histories in testdata/ for the timeline tests: go test ./internal/audit -update.
func TestRecordHistories(t *testing.T) {
	if !*update {
		t.Skip("records histories only with -update")
	}
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflow(workflows.TransferWorkflow)
		w.RegisterWorkflow(auditParentWorkflow)
		w.RegisterActivity(&flakyLedger{})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	run, err := c.ExecuteWorkflow(ctx, contract.TransferStartOptions("retried-"+queue, queue), workflows.TransferWorkflow,
		contract.TransferInput{TransferID: "retried-" + queue, SourceAccountID: "alice", TargetAccountID: "closed", Amount: 500, Currency: "EUR"})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	saveHistory(ctx, t, c, run, "transfer_retried.json")

	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "parent-" + queue, TaskQueue: queue}, auditParentWorkflow,
		contract.TransferInput{TransferID: "child-" + queue, SourceAccountID: "alice", TargetAccountID: "bob", Amount: 700, Currency: "EUR"})
	require.NoError(t, err)
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), UpdateName: "note",
		Args: []any{"urgent"}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), "", "proceed", "go"))
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "completed urgent", out)
	saveHistory(ctx, t, c, run, "parent_with_child.json")
}

func saveHistory(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, file string) {
	t.Helper()
	hist := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("testdata", file), b, 0o644))
}

// The trace id of the saga's memo is in the header, with the viewer's
// link when there is one.
func TestWriteTextShowsTheTraceAndItsLink(t *testing.T) {
	tl := Timeline{WorkflowID: "order-o-1", WorkflowType: "OrderWorkflow", Status: "Completed", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}
	var b strings.Builder
	require.NoError(t, WriteText(&b, tl, TextOptions{TraceURL: func(id string) string { return "http://jaeger/trace/" + id }}))
	require.Contains(t, b.String(), "  trace:   4bf92f3577b34da6a3ce929d0e0e4736\n           http://jaeger/trace/4bf92f3577b34da6a3ce929d0e0e4736\n")
	b.Reset()
	require.NoError(t, WriteText(&b, Timeline{WorkflowID: "order-o-2", Status: "Completed"}, TextOptions{}))
	require.NotContains(t, b.String(), "trace:", "no trace line for a saga started with tracing off")
}

// Build reads the trace id from the memo of the started event.
func TestBuildReadsTheTraceIDFromTheMemo(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	p, err := dc.ToPayload("4bf92f3577b34da6a3ce929d0e0e4736")
	require.NoError(t, err)
	started := &historypb.HistoryEvent{EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			Memo: &commonpb.Memo{Fields: map[string]*commonpb.Payload{contract.MemoTraceID: p}},
		}}}
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", Build([]*historypb.HistoryEvent{started}, nil, Options{}).TraceID)
	require.Empty(t, Build([]*historypb.HistoryEvent{{EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{}}}}, nil, Options{}).TraceID)
}
