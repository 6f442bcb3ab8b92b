package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

func TestSagaOfADeadLetter(t *testing.T) {
	ref := activities.ActivityRef{Namespace: "default", WorkflowID: "transfer-1", RunID: "r1", ActivityID: "7"}.String()
	tests := []struct {
		name string
		d    amqp.DeadLetter
		want messageSaga
	}{
		{"command names its activity", dl(events.CmdLedgerWithdraw, ref, ""), messageSaga{WorkflowID: "transfer-1", RunID: "r1", ActivityID: "7"}},
		{"event by its correlation id", dl(events.TypeFundsWithdrawn, "transfer-1", ""), messageSaga{WorkflowID: "transfer-1"}},
		{"envelope correlation id", dl("", "", `{"type":"funds.withdrawn","correlationid":"transfer-2"}`), messageSaga{WorkflowID: "transfer-2"}},
		{"order.placed names the saga it starts", dl("", "", `{"type":"order.placed","data":{"order_id":"o-9"}}`), messageSaga{WorkflowID: contract.OrderWorkflowID("o-9")}},
		{"undecodable", dl("", "", `not json`), messageSaga{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, sagaOf(tc.d))
		})
	}
}

func dl(typ, corr, body string) amqp.DeadLetter {
	d := amqp.DeadLetter{Consumer: "orders-projection"}
	d.Type, d.CorrelationID, d.Body = typ, corr, []byte(body)
	return d
}

func TestRedriveVerdict(t *testing.T) {
	running := sagaInfo{State: sagaStateRunning, Exists: true, Running: true, Pending: map[string]bool{"7": true}}
	ended := sagaInfo{State: "compensated", Exists: true, Pending: map[string]bool{}}
	missing := sagaInfo{State: sagaStateNotFound}
	bridge := func(typ string) amqp.DeadLetter {
		d := dl(typ, "order-1", "")
		d.Consumer = contract.BridgeQueue
		return d
	}
	tests := []struct {
		name string
		d    amqp.DeadLetter
		s    messageSaga
		info sagaInfo
		ok   bool
		why  string
	}{
		{"no saga", dl("x", "", ""), messageSaga{}, sagaInfo{State: sagaStateNone}, true, "belongs to no saga"},
		{"activity waits", dl(events.CmdLedgerWithdraw, "", ""), messageSaga{WorkflowID: "t", ActivityID: "7"}, running, true, "activity 7 of t still waits for it"},
		{"activity done", dl(events.CmdLedgerWithdraw, "", ""), messageSaga{WorkflowID: "t", ActivityID: "8"}, running, false, "activity 8 of t no longer waits for it (saga running)"},
		{"saga gone", dl(events.TypeCommandReplied, "", ""), messageSaga{WorkflowID: "t", ActivityID: "7"}, missing, false, "saga t not found"},
		{"order not started", bridge(events.TypeOrderPlaced), messageSaga{WorkflowID: "order-1"}, missing, true, "not started yet"},
		{"order started", bridge(events.TypeOrderPlaced), messageSaga{WorkflowID: "order-1"}, ended, false, "already started (saga compensated)"},
		{"cancel for a running saga", bridge(events.TypeOrderCancelRequested), messageSaga{WorkflowID: "order-1"}, running, true, "order-1 is running and takes the event"},
		{"cancel for an ended saga", bridge(events.TypeOrderCancelRequested), messageSaga{WorkflowID: "order-1"}, ended, false, "order-1 is compensated: the event can no longer change it"},
		{"fact for a projection", dl(events.TypeFundsWithdrawn, "", ""), messageSaga{WorkflowID: "t"}, ended, true, "orders-projection has not applied this event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := redriveVerdict(tc.d, tc.s, tc.info)
			require.Equal(t, tc.ok, ok, why)
			require.Contains(t, why, tc.why)
		})
	}
}

// describeSaga names what list shows beside a dead letter: the saga's
// status while it runs, its outcome once it ended (compensated included),
// the workflow's status for a workflow without the saga attribute.
func TestDescribeSaga(t *testing.T) {
	desc := func(status enumspb.WorkflowExecutionStatus, saga contract.SagaStatus, pending ...string) *workflowservice.DescribeWorkflowExecutionResponse {
		info := &workflowpb.WorkflowExecutionInfo{Status: status}
		if saga != "" {
			p, err := converter.GetDefaultDataConverter().ToPayload(string(saga))
			require.NoError(t, err)
			info.SearchAttributes = &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{contract.SagaStatusKey.GetName(): p}}
		}
		d := &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: info}
		for _, id := range pending {
			d.PendingActivities = append(d.PendingActivities, &workflowpb.PendingActivityInfo{ActivityId: id})
		}
		return d
	}
	running := enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	tests := []struct {
		name  string
		desc  *workflowservice.DescribeWorkflowExecutionResponse
		state string
		runs  bool
	}{
		{"running", desc(running, contract.StatusRunning, "5"), sagaStateRunning, true},
		{"compensating", desc(running, contract.StatusCompensating), "compensating", true},
		{"parked for an operator", desc(running, contract.StatusCompensationFailed), sagaStateOperator, true},
		{"completed", desc(enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, contract.StatusCompleted), "completed", false},
		{"compensated", desc(enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, contract.StatusCompensated), "compensated", false},
		{"no saga attribute", desc(enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, ""), "timed out", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := describeSaga(tc.desc)
			require.True(t, got.Exists)
			require.Equal(t, tc.state, got.State)
			require.Equal(t, tc.runs, got.Running)
		})
	}
	require.True(t, describeSaga(desc(running, contract.StatusRunning, "5")).Pending["5"])
}
