package workflows

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

var updateHistories = flag.Bool("update", false, "record the transfer histories in testdata/ from runs on a dev server")

// scriptedLedger stands in for the ledger behind RabbitMQ with activities of
// the same names: it rejects withdrawals over 1000 and deposits to "closed".
type scriptedLedger struct{}

func (scriptedLedger) Withdraw(_ context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	if cmd.Amount > 1000 {
		return activities.CommandResult{}, activities.RejectionError(events.Reply{CommandID: "c", CommandType: events.CmdLedgerWithdraw, Status: events.ReplyRejected, Reason: events.ReasonInsufficientFunds})
	}
	return activities.CommandResult{CommandType: events.CmdLedgerWithdraw}, nil
}

func (scriptedLedger) Deposit(_ context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	if cmd.AccountID == "closed" {
		return activities.CommandResult{}, activities.RejectionError(events.Reply{CommandID: "c", CommandType: events.CmdLedgerDeposit, Status: events.ReplyRejected, Reason: events.ReasonAccountClosed})
	}
	return activities.CommandResult{CommandType: events.CmdLedgerDeposit}, nil
}

func (scriptedLedger) Refund(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdLedgerRefund}, nil
}

func (scriptedLedger) PublishTransferEvent(context.Context, activities.TransferEvent) error {
	return nil
}

// replayCases are the recorded histories of the current code (version
// localTransferSteps of LocalOutcomePublishChange): one per way a transfer
// ends. Those recorded at the earlier versions are transferTaskCases'.
var replayCases = []struct {
	file    string
	input   contract.TransferInput
	outcome contract.TransferOutcome
}{
	{"transfer_completed_v2.json", contract.TransferInput{TransferID: "replay-completed", SourceAccountID: "alice", TargetAccountID: "bob", Amount: 500, Currency: "EUR"}, contract.TransferCompleted},
	{"transfer_insufficient_funds_v2.json", contract.TransferInput{TransferID: "replay-overdraw", SourceAccountID: "alice", TargetAccountID: "bob", Amount: 5000, Currency: "EUR"}, contract.TransferFailed},
	{"transfer_compensated_v2.json", contract.TransferInput{TransferID: "replay-closed", SourceAccountID: "alice", TargetAccountID: "closed", Amount: 500, Currency: "EUR"}, contract.TransferCompensated},
}

// TestTransferReplaysRecordedHistories replays histories recorded on a real
// dev server: a change to TransferWorkflow that would break running
// transfers (a non-deterministic change) fails here.
func TestTransferReplaysRecordedHistories(t *testing.T) {
	for _, rc := range replayCases {
		t.Run(rc.file, func(t *testing.T) {
			path := filepath.Join("testdata", rc.file)
			_, err := os.Stat(path)
			require.NoError(t, err, "record it with: go test ./workflows -run TestTransferLiveRunReplays -args -update")
			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflow(TransferWorkflow)
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(nil, path))
		})
	}
}

// TestTransferLiveRunReplays runs the transfers on the dev server and replays
// each fresh history; with -update it stores them in testdata/.
func TestTransferLiveRunReplays(t *testing.T) {
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflow(TransferWorkflow)
		w.RegisterActivity(&scriptedLedger{})
	})
	for _, rc := range replayCases {
		t.Run(rc.file, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			opts := contract.TransferStartOptions(rc.input.TransferID+"-"+queue, queue)
			run, err := c.ExecuteWorkflow(ctx, opts, TransferWorkflow, rc.input)
			require.NoError(t, err)
			var res contract.TransferResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, rc.outcome, res.Outcome)

			hist := &historypb.History{}
			iter := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for iter.HasNext() {
				ev, err := iter.Next()
				require.NoError(t, err)
				hist.Events = append(hist.Events, ev)
			}
			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflow(TransferWorkflow)
			require.NoError(t, replayer.ReplayWorkflowHistory(nil, hist))

			if *updateHistories {
				b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(hist)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join("testdata", rc.file), b, 0o644))
			}
		})
	}
}
