package audit

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagaflow/sagaflow/contract"
)

// TestOperatorActionsAreTheirOwnLines: the operator's retry and resolve
// signals show as operator records naming who acted and why; other signals
// stay signals.
func TestOperatorActionsAreTheirOwnLines(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	signal := func(id int64, name string, arg any) *historypb.HistoryEvent {
		in, err := converter.GetDefaultDataConverter().ToPayloads(arg)
		require.NoError(t, err)
		return &historypb.HistoryEvent{EventId: id, EventTime: timestamppb.New(start.Add(time.Duration(id) * time.Second)),
			EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{
				SignalName: name, Input: in, Identity: "42@ops-host"}}}
	}
	tl := Build([]*historypb.HistoryEvent{
		signal(1, contract.SignalRetryCompensation, contract.OperatorAction{Operator: "alice", Reason: "broker back"}),
		signal(2, contract.SignalResolve, contract.OperatorAction{Operator: "bob", Reason: "refunded by hand"}),
		signal(3, "proceed", "go"),
	}, nil, Options{})
	require.Equal(t, []string{"operator retry-compensation", "operator resolve", "signal proceed"}, kindsOf(tl))

	var out bytes.Buffer
	require.NoError(t, WriteText(&out, tl, TextOptions{}))
	require.Contains(t, out.String(), "operator      retry-compensation by alice: broker back from 42@ops-host")
	require.Contains(t, out.String(), "operator      resolve by bob: refunded by hand from 42@ops-host")
	require.Contains(t, out.String(), `signal        proceed payload "go"`)
}
