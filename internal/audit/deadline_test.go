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

// A forward step that still failed for a reason of the infrastructure
// when its saga's deadline passed: the trail says it gave up at the
// deadline, with the deadline from the step's summary, the attempts and
// the last failure, instead of a bare "failed".
func TestAStepThatGaveUpAtItsDeadlineSaysSo(t *testing.T) {
	at := func(min int) *timestamppb.Timestamp {
		return timestamppb.New(laT0.Add(time.Duration(min) * time.Minute))
	}
	summary, err := converter.GetDefaultDataConverter().ToPayload("withdraw: retried until 2026-01-01T14:00:00Z")
	require.NoError(t, err)
	lastFailure := &failurepb.Failure{Message: "publish ledger.withdraw: connection refused",
		FailureInfo: &failurepb.Failure_ApplicationFailureInfo{ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: "wrapError"}}}
	for _, tc := range []struct {
		name string
		end  *historypb.HistoryEvent
	}{
		{"retries stopped before the deadline", &historypb.HistoryEvent{EventId: 3, EventTime: at(119), EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
			Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{
				ScheduledEventId: 1, StartedEventId: 2, Failure: lastFailure, RetryState: enumspb.RETRY_STATE_TIMEOUT}}}},
		{"the deadline passed during an attempt", &historypb.HistoryEvent{EventId: 3, EventTime: at(120), EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
			Attributes: &historypb.HistoryEvent_ActivityTaskTimedOutEventAttributes{ActivityTaskTimedOutEventAttributes: &historypb.ActivityTaskTimedOutEventAttributes{
				ScheduledEventId: 1, StartedEventId: 2, RetryState: enumspb.RETRY_STATE_TIMEOUT,
				Failure: &failurepb.Failure{Message: "activity ScheduleToClose timeout", Cause: lastFailure,
					FailureInfo: &failurepb.Failure_TimeoutFailureInfo{TimeoutFailureInfo: &failurepb.TimeoutFailureInfo{TimeoutType: enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE}}}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := []*historypb.HistoryEvent{
				{EventId: 1, EventTime: at(0), EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, UserMetadata: &sdkpb.UserMetadata{Summary: summary},
					Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
						ActivityId: "1", ActivityType: &commonpb.ActivityType{Name: "Withdraw"}, Input: payloadsOf(t, map[string]any{"step": "withdraw"})}}},
				{EventId: 2, EventTime: at(118), EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED,
					Attributes: &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{
						ScheduledEventId: 1, Attempt: 131, LastFailure: lastFailure}}},
				tc.end,
			}
			tl := Build(evs, nil, Options{})
			r := recordNamed(t, tl, KindStep, "withdraw")
			require.Equal(t, OutcomeDeadlinePassed, r.Outcome)
			require.Equal(t, int32(131), r.Attempt)
			require.Contains(t, r.Error, "gave up at the saga's deadline, still failing: ")
			require.Contains(t, r.Error, "connection refused")
			var buf bytes.Buffer
			require.NoError(t, WriteText(&buf, tl, TextOptions{}))
			require.Contains(t, buf.String(), `withdraw [Withdraw] "withdraw: retried until 2026-01-01T14:00:00Z" input {"step":"withdraw"} → deadline-passed in `)
			require.Regexp(t, `\(attempt 131\): gave up at the saga.s deadline, still failing: (activity ScheduleToClose timeout: )?publish ledger.withdraw: connection refused`, buf.String())
		})
	}
}
