package audit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ (and, with a dev server, re-record the histories)")

func loadHistory(t *testing.T, name string) []*historypb.HistoryEvent {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".json"))
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	return h.Events
}

// golden compares got with testdata/<name>, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "create it with: go test ./internal/audit -update")
	require.Equal(t, string(want), string(got))
}

// historyCases are histories recorded from real runs on a dev server.
var historyCases = []struct {
	name         string
	workflowType string
	// kinds is the expected sequence of record kinds and names.
	kinds      []string
	status     string
	sagaStatus string
}{
	{"transfer_completed", "TransferWorkflow", []string{
		"started TransferWorkflow", "status SagaStatus", "step withdraw", "step deposit", "step publish-outcome",
		"status SagaStatus", "closed Completed"}, "Completed", "Completed"},
	{"transfer_compensated", "TransferWorkflow", []string{
		"started TransferWorkflow", "status SagaStatus", "step withdraw", "step deposit", "status SagaStatus",
		"compensation refund", "status SagaStatus", "step publish-outcome", "closed Completed"}, "Completed", "Compensated"},
	{"transfer_insufficient_funds", "TransferWorkflow", []string{
		"started TransferWorkflow", "status SagaStatus", "step withdraw", "status SagaStatus", "status SagaStatus",
		"step publish-outcome", "closed Completed"}, "Completed", "Compensated"},
	{"transfer_retried", "TransferWorkflow", []string{
		"started TransferWorkflow", "status SagaStatus", "step withdraw", "retry withdraw", "step deposit",
		"status SagaStatus", "compensation refund", "status SagaStatus", "step publish-outcome", "closed Completed"}, "Completed", "Compensated"},
	// Since the transfer publishes its outcome with a local activity, the
	// publish is a LocalActivity marker: the same step in the trail.
	{"transfer_completed_v1", "TransferWorkflow", []string{
		"started TransferWorkflow", "status SagaStatus", "step withdraw", "step deposit", "step publish-outcome",
		"status SagaStatus", "closed Completed"}, "Completed", "Completed"},
	{"transfer_compensated_v1", "TransferWorkflow", []string{
		"started TransferWorkflow", "status SagaStatus", "step withdraw", "step deposit", "status SagaStatus",
		"compensation refund", "status SagaStatus", "step publish-outcome", "closed Completed"}, "Completed", "Compensated"},
	// An order holding its own stock (workflows.OwnHoldChange): the
	// reservation's steps, its time-to-live timer and the payment child in
	// the order's own trail, the outcome published locally.
	{"order_confirmed_v1", "OrderWorkflow", []string{
		"started OrderWorkflow", "status SagaStatus", "status SagaStatus", "step reserve", "timer 15", "child TransferWorkflow",
		"step commit", "step publish-outcome", "status SagaStatus", "closed Completed"}, "Completed", "Completed"},
	{"order_payment_refused_v1", "OrderWorkflow", []string{
		"started OrderWorkflow", "status SagaStatus", "status SagaStatus", "step reserve", "timer 15", "child TransferWorkflow",
		"status SagaStatus", "compensation release", "status SagaStatus", "step publish-outcome", "closed Completed"}, "Completed", "Compensated"},
	{"parent_with_child", "auditParentWorkflow", []string{
		"started auditParentWorkflow", "timer 5", "update note", "signal proceed", "child TransferWorkflow",
		"closed Completed"}, "Completed", ""},
}

func kindsOf(tl Timeline) []string {
	out := make([]string, len(tl.Records))
	for i, r := range tl.Records {
		out[i] = string(r.Kind) + " " + r.Name
	}
	return out
}

func TestBuildOnRecordedHistories(t *testing.T) {
	for _, tc := range historyCases {
		t.Run(tc.name, func(t *testing.T) {
			tl := Build(loadHistory(t, tc.name), nil, Options{})
			require.Equal(t, tc.kinds, kindsOf(tl))
			require.Equal(t, tc.status, tl.Status)
			require.Equal(t, tc.sagaStatus, tl.SagaStatus)
			require.Equal(t, tc.workflowType, tl.WorkflowType)

			var text bytes.Buffer
			require.NoError(t, WriteText(&text, tl, TextOptions{}))
			golden(t, tc.name+".golden", text.Bytes())

			js, err := json.MarshalIndent(tl, "", "  ")
			require.NoError(t, err)
			golden(t, tc.name+".golden.json", append(js, '\n'))
		})
	}
}

func TestCompensationCarriesTheStepFailure(t *testing.T) {
	tl := Build(loadHistory(t, "transfer_compensated"), nil, Options{})
	var deposit, refund *Record
	for i := range tl.Records {
		switch tl.Records[i].Name {
		case "deposit":
			deposit = &tl.Records[i]
		case "refund":
			refund = &tl.Records[i]
		}
	}
	require.NotNil(t, deposit)
	require.NotNil(t, refund)
	require.Equal(t, OutcomeFailed, deposit.Outcome)
	require.Equal(t, "AccountClosed", deposit.ErrorType)
	require.Equal(t, "NonRetryableFailure", deposit.RetryState)
	require.Contains(t, deposit.Error, "account_closed")
	require.Equal(t, KindCompensation, refund.Kind)
	require.Equal(t, OutcomeCompleted, refund.Outcome)
	require.Equal(t, "Refund", refund.Type)
	require.JSONEq(t, `{"account_id":"alice","amount":500,"currency":"EUR","step":"refund","transfer_id":"replay-closed"}`, string(refund.Input))
	require.True(t, refund.ClosedAt.After(refund.Time))
}

func TestBuildOfAnEmptyHistory(t *testing.T) {
	tl := Build(nil, nil, Options{})
	require.Equal(t, "Running", tl.Status)
	require.Empty(t, tl.Records)
	var text bytes.Buffer
	require.NoError(t, WriteText(&text, tl, TextOptions{}))
}

func TestEnumName(t *testing.T) {
	require.Equal(t, "MaximumAttemptsReached", enumName("RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED", "RETRY_STATE_"))
	require.Equal(t, "StartToClose", enumName("StartToClose", "TIMEOUT_TYPE_"))
}

func recordNamed(t *testing.T, tl Timeline, kind Kind, name string) Record {
	t.Helper()
	for _, r := range tl.Records {
		if r.Kind == kind && r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s record %q in %v", kind, name, kindsOf(tl))
	return Record{}
}

func TestRetryShowsTheAttemptAndTheFailureBeforeIt(t *testing.T) {
	tl := Build(loadHistory(t, "transfer_retried"), nil, Options{})
	step := recordNamed(t, tl, KindStep, "withdraw")
	require.Equal(t, OutcomeCompleted, step.Outcome)
	require.EqualValues(t, 2, step.Attempt)
	retry := recordNamed(t, tl, KindRetry, "withdraw")
	require.EqualValues(t, 2, retry.Attempt)
	require.Equal(t, "no reply from ledger.commands", retry.Error)
	require.Equal(t, KindCompensation, recordNamed(t, tl, KindCompensation, "refund").Kind)
}

func TestChildSignalUpdateAndTimer(t *testing.T) {
	tl := Build(loadHistory(t, "parent_with_child"), nil, Options{})
	child := recordNamed(t, tl, KindChild, "TransferWorkflow")
	require.Regexp(t, `^transfer-child-`, child.WorkflowID, "the child's id lets a reader follow it")
	require.NotEmpty(t, child.RunID)
	require.Equal(t, OutcomeCompleted, child.Outcome)
	require.JSONEq(t, `"completed"`, string(mustField(t, child.Result, "outcome")))

	sig := recordNamed(t, tl, KindSignal, "proceed")
	require.JSONEq(t, `"go"`, string(sig.Input))
	require.NotEmpty(t, sig.Identity)

	upd := recordNamed(t, tl, KindUpdate, "note")
	require.JSONEq(t, `"urgent"`, string(upd.Input))
	require.JSONEq(t, `"noted urgent"`, string(upd.Result))
	require.Equal(t, OutcomeCompleted, upd.Outcome)

	timer := recordNamed(t, tl, KindTimer, "5")
	require.Equal(t, OutcomeCanceled, timer.Outcome)
	require.JSONEq(t, `"1h0m0s"`, string(mustField(t, timer.Input, "duration")))
}

func TestDescribeAddsThePendingAttempt(t *testing.T) {
	all := loadHistory(t, "transfer_retried")
	// The history as it stood while the withdraw was retrying: up to its
	// scheduling.
	var upto []*historypb.HistoryEvent
	var activityID string
	for _, e := range all {
		upto = append(upto, e)
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			activityID = a.GetActivityId()
			break
		}
	}
	next := time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)
	desc := &workflowservice.DescribeWorkflowExecutionResponse{
		PendingActivities: []*workflowpb.PendingActivityInfo{{
			ActivityId: activityID, Attempt: 3,
			LastFailure:             &failurepb.Failure{Message: "no reply from ledger.commands", FailureInfo: &failurepb.Failure_ApplicationFailureInfo{ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: "Timeout"}}},
			NextAttemptScheduleTime: timestamppb.New(next),
		}},
	}
	tl := Build(upto, desc, Options{})
	require.Equal(t, "Running", tl.Status)
	step := recordNamed(t, tl, KindStep, "withdraw")
	require.Equal(t, OutcomeRunning, step.Outcome)
	require.EqualValues(t, 3, step.Attempt)
	require.Equal(t, "no reply from ledger.commands", step.Error)
	require.Equal(t, "Timeout", step.ErrorType)
	require.True(t, step.NextAttempt.Equal(next))

	var text bytes.Buffer
	require.NoError(t, WriteText(&text, tl, TextOptions{}))
	require.Contains(t, text.String(), "→ running (attempt 3): no reply from ledger.commands [Timeout], next attempt at 00:00:01.000")
}

func mustField(t *testing.T, raw json.RawMessage, field string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return m[field]
}
