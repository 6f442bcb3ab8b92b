package audit

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var laT0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func payloadsOf(t *testing.T, v any) *commonpb.Payloads {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(v)
	require.NoError(t, err)
	return ps
}

// localActivityMarker builds the marker the Go SDK records for a local
// activity: "data" with its type and attempt, "result" when it returned
// one, the workflow's summary as user metadata, and its failure.
func localActivityMarkerEvent(t *testing.T, id int64, ms int, typ string, attempt int32, summary string, result any, f *failurepb.Failure) *historypb.HistoryEvent {
	t.Helper()
	details := map[string]*commonpb.Payloads{
		"data": payloadsOf(t, map[string]any{"ActivityID": "1", "ActivityType": typ, "ReplayTime": laT0, "Attempt": attempt}),
	}
	if result != nil {
		details["result"] = payloadsOf(t, result)
	}
	e := &historypb.HistoryEvent{
		EventId: id, EventTime: timestamppb.New(laT0.Add(time.Duration(ms) * time.Millisecond)),
		EventType: enumspb.EVENT_TYPE_MARKER_RECORDED,
		Attributes: &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{
			MarkerName: "LocalActivity", Details: details, Failure: f,
		}},
	}
	if summary != "" {
		p, err := converter.GetDefaultDataConverter().ToPayload(summary)
		require.NoError(t, err)
		e.UserMetadata = &sdkpb.UserMetadata{Summary: p}
	}
	return e
}

func taskStartedEvent(id int64, ms int) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventId: id, EventTime: timestamppb.New(laT0.Add(time.Duration(ms) * time.Millisecond)),
		EventType: enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED}
}

// A local activity leaves no activity events, only a LocalActivity marker;
// the trail shows it as the step it is, named by its summary (its input is
// not in the history) or the "step" of its result, with its type, outcome,
// attempts and failure.
func TestLocalActivityMarkersAreSteps(t *testing.T) {
	versionMarker := &historypb.HistoryEvent{EventId: 3, EventType: enumspb.EVENT_TYPE_MARKER_RECORDED,
		Attributes: &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{MarkerName: "Version"}}}
	events := []*historypb.HistoryEvent{
		taskStartedEvent(2, 10),
		versionMarker,
		localActivityMarkerEvent(t, 4, 25, "PublishTransferEvent", 1, "publish-outcome", nil, nil),
		taskStartedEvent(5, 100),
		localActivityMarkerEvent(t, 6, 180, "PublishTransferEvent", 3, "publish-outcome", nil,
			&failurepb.Failure{Message: "publish: amqp: connection lost", FailureInfo: &failurepb.Failure_ApplicationFailureInfo{ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: "wrapError"}}}),
		localActivityMarkerEvent(t, 7, 190, "Lookup", 1, "", map[string]string{"step": "lookup", "id": "x"}, nil),
		localActivityMarkerEvent(t, 8, 195, "Notify", 1, "", nil, nil),
	}
	tl := Build(events, nil, Options{})
	require.Equal(t, []string{"step publish-outcome", "step publish-outcome", "retry publish-outcome", "step lookup", "step Notify"}, kindsOf(tl),
		"the version marker is not a step")

	ok := tl.Records[0]
	require.Equal(t, "PublishTransferEvent", ok.Type)
	require.Equal(t, OutcomeCompleted, ok.Outcome)
	require.Empty(t, ok.Summary, "the summary is the name, not repeated")
	require.EqualValues(t, 1, ok.Attempt)
	require.True(t, ok.Time.Equal(laT0.Add(10*time.Millisecond)), "it ran inside the workflow task that started at %v", ok.Time)
	require.True(t, ok.ClosedAt.Equal(laT0.Add(25*time.Millisecond)))

	failed := tl.Records[1]
	require.Equal(t, OutcomeFailed, failed.Outcome)
	require.Equal(t, "publish: amqp: connection lost", failed.Error)
	require.Equal(t, "wrapError", failed.ErrorType)
	require.EqualValues(t, 3, failed.Attempt)
	require.EqualValues(t, 3, tl.Records[2].Attempt)

	require.JSONEq(t, `{"step":"lookup","id":"x"}`, string(tl.Records[3].Result))
	require.Equal(t, "Lookup", tl.Records[3].Type)

	var text bytes.Buffer
	require.NoError(t, WriteText(&text, tl, TextOptions{}))
	require.Contains(t, text.String(), "step          publish-outcome [PublishTransferEvent] → completed in 15ms")
	require.Contains(t, text.String(), "publish-outcome [PublishTransferEvent] → failed in 80ms (attempt 3): publish: amqp: connection lost [wrapError]")
}

// A command step run as a local activity returns its step and its input
// with the service's result: the trail shows them as it shows a regular
// activity's input.
func TestLocalCommandStepShowsItsInput(t *testing.T) {
	result := map[string]any{
		"command_id": "c-1", "command_type": "ledger.withdraw", "step": "withdraw",
		"input": map[string]any{"step": "withdraw", "account_id": "alice", "amount": 500, "currency": "EUR"},
	}
	tl := Build([]*historypb.HistoryEvent{
		taskStartedEvent(2, 10),
		localActivityMarkerEvent(t, 3, 20, "Withdraw", 1, "withdraw", result, nil),
	}, nil, Options{})
	require.Equal(t, []string{"step withdraw"}, kindsOf(tl))
	require.JSONEq(t, `{"step":"withdraw","account_id":"alice","amount":500,"currency":"EUR"}`, string(tl.Records[0].Input))
	require.Equal(t, "Withdraw", tl.Records[0].Type)
}

// A compensating saga's local activity is a compensation, like its
// regular activities.
func TestLocalActivityWhileCompensating(t *testing.T) {
	b := &builder{dc: converter.GetDefaultDataConverter(), byEvent: map[int64]int{}, byUpdate: map[string]int{}, byTimer: map[string]int{},
		activity: map[string]int{}, tl: Timeline{Records: []Record{}}, status: "Compensating"}
	b.event(localActivityMarkerEvent(t, 4, 25, "ReleaseHold", 1, "release", nil, nil))
	require.Equal(t, []string{"compensation release"}, kindsOf(b.tl))
}
