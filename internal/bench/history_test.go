package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func ev(t enumspb.EventType) *historypb.HistoryEvent { return &historypb.HistoryEvent{EventType: t} }

func childStarted(id string) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
		Attributes: &historypb.HistoryEvent_ChildWorkflowExecutionStartedEventAttributes{
			ChildWorkflowExecutionStartedEventAttributes: &historypb.ChildWorkflowExecutionStartedEventAttributes{
				WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "run-" + id},
			},
		},
	}
}

func TestCountHistory(t *testing.T) {
	tests := []struct {
		name     string
		events   []*historypb.HistoryEvent
		want     TaskCounts
		children []string
	}{
		{"empty workflow", []*historypb.HistoryEvent{
			ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED),
		}, TaskCounts{Workflows: 1, WorkflowTasks: 1}, nil},
		{"completed, failed and timed-out attempts count; scheduled and started do not", []*historypb.HistoryEvent{
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
		}, TaskCounts{Workflows: 1, WorkflowTasks: 2, ActivityTasks: 3, ActivityRetries: 2, WorkflowTaskRetries: 1}, nil},
		{"children started are returned", []*historypb.HistoryEvent{
			ev(enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED),
			childStarted("reservation-1"),
			childStarted("transfer-1"),
		}, TaskCounts{Workflows: 1}, []string{"reservation-1", "transfer-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, children := countHistory(tt.events)
			require.Equal(t, tt.want, got)
			var ids []string
			for _, c := range children {
				ids = append(ids, c.GetWorkflowId())
			}
			require.Equal(t, tt.children, ids)
		})
	}
}

func TestSagaTasksAddsChildrenRecursively(t *testing.T) {
	histories := map[string][]*historypb.HistoryEvent{
		"order": {ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), childStarted("reservation"), childStarted("transfer"),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)},
		"reservation": {ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED),
			ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED), childStarted("grandchild")},
		"transfer":   {ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)},
		"grandchild": {ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)},
	}
	var runs []string
	read := func(_ context.Context, id, run string) ([]*historypb.HistoryEvent, error) {
		runs = append(runs, id+"/"+run)
		h, ok := histories[id]
		if !ok {
			return nil, errors.New("no history")
		}
		return h, nil
	}
	got, err := sagaTasks(context.Background(), read, "order", "")
	require.NoError(t, err)
	require.Equal(t, TaskCounts{Workflows: 4, WorkflowTasks: 5, ActivityTasks: 3}, got)
	require.Contains(t, runs, "reservation/run-reservation", "children are read at the run they started")

	histories["transfer"] = append(histories["transfer"], childStarted("missing"))
	_, err = sagaTasks(context.Background(), read, "order", "")
	require.Error(t, err)
}

func TestSampleIndexes(t *testing.T) {
	require.Equal(t, []int{0, 2, 4, 6, 8}, sampleIndexes(10, 5))
	require.Equal(t, []int{0, 1, 2}, sampleIndexes(3, 50), "never more than there are")
	require.Empty(t, sampleIndexes(10, 0))
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at builds an event with an id and a time t0+ms.
func at(id int64, ms int, typ enumspb.EventType) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventId: id, EventType: typ, EventTime: timestamppb.New(t0.Add(time.Duration(ms) * time.Millisecond))}
}

func TestLongestGap(t *testing.T) {
	wftStarted := at(3, 30, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED)
	wftStarted.Attributes = &historypb.HistoryEvent_WorkflowTaskStartedEventAttributes{
		WorkflowTaskStartedEventAttributes: &historypb.WorkflowTaskStartedEventAttributes{ScheduledEventId: 2}}
	wftDone := at(4, 35, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
	wftDone.Attributes = &historypb.HistoryEvent_WorkflowTaskCompletedEventAttributes{
		WorkflowTaskCompletedEventAttributes: &historypb.WorkflowTaskCompletedEventAttributes{ScheduledEventId: 2, StartedEventId: 3}}
	actStarted := at(6, 100, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED)
	actStarted.Attributes = &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{
		ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{ScheduledEventId: 5}}
	actDone := at(7, 400, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
	actDone.Attributes = &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{
		ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{ScheduledEventId: 5, StartedEventId: 6}}
	events := []*historypb.HistoryEvent{
		at(1, 0, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
		at(2, 10, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
		wftStarted, wftDone,
		at(5, 35, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
		actStarted, actDone,
	}
	g := longestGap("order-1", events)
	require.Equal(t, Gap{Duration: 300 * time.Millisecond, WorkflowID: "order-1",
		Before: enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, After: enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED}, g)
}

// A transfer's tasks, counted from its recorded histories: since
// workflows.LocalOutcomePublishChange its outcome publish is a local
// activity (a marker, no task of its own), so a completed transfer costs 3
// workflow tasks and 2 activity tasks instead of 4 and 3.
func TestCountHistoryOfATransfer(t *testing.T) {
	tests := []struct {
		file string
		want TaskCounts
	}{
		{"transfer_completed.json", TaskCounts{Workflows: 1, WorkflowTasks: 4, ActivityTasks: 3}},
		{"transfer_completed_v1.json", TaskCounts{Workflows: 1, WorkflowTasks: 3, ActivityTasks: 2}},
		{"transfer_compensated_v1.json", TaskCounts{Workflows: 1, WorkflowTasks: 4, ActivityTasks: 3, ActivityRetries: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("..", "..", "workflows", "testdata", tt.file))
			require.NoError(t, err)
			defer f.Close()
			h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			require.NoError(t, err)
			got, children := countHistory(h.Events)
			require.Equal(t, tt.want, got)
			require.Empty(t, children)
		})
	}
}
