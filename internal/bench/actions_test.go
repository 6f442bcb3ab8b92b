package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

func activityStarted(attempt int32) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED,
		Attributes: &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{Attempt: attempt}}}
}

func marker(name string, task int64) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_MARKER_RECORDED,
		Attributes: &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{MarkerName: name, WorkflowTaskCompletedEventId: task}}}
}

func upsert(keys ...string) *historypb.HistoryEvent {
	fields := map[string]*commonpb.Payload{}
	for _, k := range keys {
		fields[k] = &commonpb.Payload{}
	}
	return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
		Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
			SearchAttributes: &commonpb.SearchAttributes{IndexedFields: fields}}}}
}

func TestCountActions(t *testing.T) {
	tests := []struct {
		name   string
		events []*historypb.HistoryEvent
		want   Actions
	}{
		{"a started workflow is one action; its workflow tasks are free", []*historypb.HistoryEvent{
			ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED),
		}, Actions{WorkflowsStarted: 1}},
		{"every activity attempt counts, scheduling does not", []*historypb.HistoryEvent{
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
			activityStarted(1),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
			activityStarted(3),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), // cancelled before it started
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED),
		}, Actions{ActivityAttempts: 4}},
		{"local activities count once per workflow task that ran them", []*historypb.HistoryEvent{
			marker("LocalActivity", 4),
			marker("LocalActivity", 4),
			marker("LocalActivity", 9),
		}, Actions{LocalActivities: 2}},
		{"version markers are free, side effects are not", []*historypb.HistoryEvent{
			marker("Version", 4),
			marker("SideEffect", 4),
			marker("MutableSideEffect", 9),
		}, Actions{SideEffects: 2}},
		{"an upsert counts once however many attributes it sets, a change version upsert not at all", []*historypb.HistoryEvent{
			upsert("SagaStatus"),
			upsert("OrderId", "CustomerId"),
			upsert("TemporalChangeVersion"),
			upsert("TemporalChangeVersion", "SagaStatus"),
		}, Actions{SearchAttributeUpserts: 3}},
		{"timers, signals received and updates accepted count; a signal sent and a child initiated do not (they count where they arrive)", []*historypb.HistoryEvent{
			ev(enumspb.EVENT_TYPE_TIMER_STARTED),
			ev(enumspb.EVENT_TYPE_TIMER_CANCELED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED),
			ev(enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED),
			ev(enumspb.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED),
			ev(enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED),
			childStarted("transfer-1"),
		}, Actions{TimersStarted: 1, SignalsSent: 1, UpdatesAccepted: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := countActions(tt.events)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestActionsTotalAndAdd(t *testing.T) {
	a := Actions{1, 2, 3, 4, 5, 6, 7, 8}
	require.Equal(t, 36, a.Total())
	require.Equal(t, Actions{2, 4, 6, 8, 10, 12, 14, 16}, a.Add(a))
}

func loadRecorded(t *testing.T, file string) []*historypb.HistoryEvent {
	t.Helper()
	events, err := readHistoryFile(filepath.Join(recordedDir, file))
	require.NoError(t, err)
	return events
}

// recordedDir holds the recorded histories, from this package's directory.
var recordedDir = filepath.Join("..", "..", "workflows", "testdata")

// The order's own stock hold takes the reservation child away: fewer
// workflows, workflow tasks and billable actions for the same confirmed
// order, within the targets.
func TestCountRecordedBeforeAndAfter(t *testing.T) {
	got, err := countRecorded(recordedDir)
	require.NoError(t, err)
	require.Len(t, got, len(recordedSagas))
	order := got[0]
	require.Equal(t, "order confirmed", order.Name)
	require.Equal(t, 3, order.BeforeTasks.Workflows)
	require.Equal(t, 2, order.AfterTasks.Workflows)
	require.Less(t, order.AfterTasks.WorkflowTasks, order.BeforeTasks.WorkflowTasks)
	require.LessOrEqual(t, order.AfterTasks.WorkflowTasks, targetOrderWorkflowTasks)
	require.LessOrEqual(t, order.AfterTasks.ActivityTasks, targetOrderActivityTasks)
	require.Less(t, order.AfterActions.Total(), order.BeforeActions.Total())
	transfer := got[1]
	require.LessOrEqual(t, transfer.AfterTasks.WorkflowTasks, targetTransferWorkflowTasks)
	require.LessOrEqual(t, transfer.AfterTasks.ActivityTasks, targetTransferActivityTasks)

	var b strings.Builder
	renderRecorded(&printer{w: &b}, &Report{Recorded: got})
	require.Contains(t, b.String(), "| order confirmed | `order_confirmed.json`, `reservation_committed_by_parent.json`, `transfer_completed.json` | 3 |")
}

func TestCountRecordedNamesAMissingFile(t *testing.T) {
	_, err := countRecorded(t.TempDir())
	require.ErrorContains(t, err, "order_confirmed.json")
}

// The transfer's local outcome publish trades an activity attempt for a
// local activity: the same actions, one task fewer of each kind.
func TestCountActionsOfRecordedTransfers(t *testing.T) {
	tests := []struct {
		file string
		want Actions
	}{
		{"transfer_completed.json", Actions{WorkflowsStarted: 1, ActivityAttempts: 3, SearchAttributeUpserts: 2}},
		{"transfer_completed_v1.json", Actions{WorkflowsStarted: 1, ActivityAttempts: 2, LocalActivities: 1, SearchAttributeUpserts: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			require.Equal(t, tt.want, countActions(loadRecorded(t, tt.file)))
		})
	}
}

// sagaActions adds the children's actions to the parent's.
func TestSagaActionsAddsChildren(t *testing.T) {
	histories := map[string][]*historypb.HistoryEvent{
		"order-1":    {ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED), childStarted("transfer-1"), ev(enumspb.EVENT_TYPE_TIMER_STARTED)},
		"transfer-1": {ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED), activityStarted(2)},
	}
	read := func(_ context.Context, id, _ string) ([]*historypb.HistoryEvent, error) { return histories[id], nil }
	got, err := sagaActions(context.Background(), read, "order-1", "")
	require.NoError(t, err)
	require.Equal(t, Actions{WorkflowsStarted: 2, ActivityAttempts: 2, TimersStarted: 1}, got)
	require.Equal(t, 5, got.Total())
}
