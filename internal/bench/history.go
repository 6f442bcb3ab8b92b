package main

import (
	"context"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// TaskCounts are the tasks a saga cost the server and the worker, counted
// from its workflow's history and its children's.
type TaskCounts struct {
	// Workflows is how many workflow executions the saga ran (itself and
	// its children).
	Workflows int
	// WorkflowTasks counts WorkflowTaskCompleted events.
	WorkflowTasks int
	// ActivityTasks counts activity attempts that ended: completed, failed
	// or timed out.
	ActivityTasks int
	// ActivityRetries counts the activity attempts that failed or timed out
	// (each one is retried or fails its step).
	ActivityRetries int
	// WorkflowTaskRetries counts workflow tasks that failed or timed out
	// (a worker too slow to pick up or finish a task within its timeout).
	WorkflowTaskRetries int
}

// Add returns the sum of two counts.
func (c TaskCounts) Add(o TaskCounts) TaskCounts {
	return TaskCounts{
		Workflows:           c.Workflows + o.Workflows,
		WorkflowTasks:       c.WorkflowTasks + o.WorkflowTasks,
		ActivityTasks:       c.ActivityTasks + o.ActivityTasks,
		ActivityRetries:     c.ActivityRetries + o.ActivityRetries,
		WorkflowTaskRetries: c.WorkflowTaskRetries + o.WorkflowTaskRetries,
	}
}

// countHistory counts the tasks of one workflow's history and returns the
// child workflows it started, whose histories hold the rest of the saga.
func countHistory(events []*historypb.HistoryEvent) (TaskCounts, []*commonpb.WorkflowExecution) {
	c := TaskCounts{Workflows: 1}
	var children []*commonpb.WorkflowExecution
	for _, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			c.WorkflowTasks++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			c.ActivityTasks++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			c.ActivityTasks++
			c.ActivityRetries++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			c.WorkflowTaskRetries++
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
			if we := e.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution(); we != nil {
				children = append(children, we)
			}
		}
	}
	return c, children
}

// historyReader reads one workflow's whole history.
type historyReader func(ctx context.Context, workflowID, runID string) ([]*historypb.HistoryEvent, error)

// temporalHistory reads histories through a Temporal client.
func temporalHistory(c client.Client) historyReader {
	return func(ctx context.Context, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
		it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var events []*historypb.HistoryEvent
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return nil, fmt.Errorf("history of %s: %w", workflowID, err)
			}
			events = append(events, e)
		}
		return events, nil
	}
}

// sagaTasks counts the tasks of a saga: its workflow and, recursively,
// every child workflow it started.
func sagaTasks(ctx context.Context, read historyReader, workflowID, runID string) (TaskCounts, error) {
	events, err := read(ctx, workflowID, runID)
	if err != nil {
		return TaskCounts{}, err
	}
	total, children := countHistory(events)
	for _, ch := range children {
		c, err := sagaTasks(ctx, read, ch.GetWorkflowId(), ch.GetRunId())
		if err != nil {
			return TaskCounts{}, err
		}
		total = total.Add(c)
	}
	return total, nil
}

// Gap is the longest wait between two consecutive events of a saga's
// histories: where its time went.
type Gap struct {
	Duration   time.Duration
	WorkflowID string
	// Before and After are the event types on either side of the wait.
	Before, After enumspb.EventType
}

// longestGap finds the longest wait between consecutive events of one
// history.
func longestGap(workflowID string, events []*historypb.HistoryEvent) Gap {
	var g Gap
	for i := 1; i < len(events); i++ {
		d := events[i].GetEventTime().AsTime().Sub(events[i-1].GetEventTime().AsTime())
		if d > g.Duration {
			g = Gap{Duration: d, WorkflowID: workflowID, Before: events[i-1].GetEventType(), After: events[i].GetEventType()}
		}
	}
	return g
}

// sagaGap is the longest wait across a saga's workflow and its children.
func sagaGap(ctx context.Context, read historyReader, workflowID, runID string) (Gap, error) {
	events, err := read(ctx, workflowID, runID)
	if err != nil {
		return Gap{}, err
	}
	g := longestGap(workflowID, events)
	_, children := countHistory(events)
	for _, ch := range children {
		cg, err := sagaGap(ctx, read, ch.GetWorkflowId(), ch.GetRunId())
		if err != nil {
			return Gap{}, err
		}
		if cg.Duration > g.Duration {
			g = cg
		}
	}
	return g, nil
}

// sampleIndexes picks n of total indexes spread evenly, first included.
func sampleIndexes(total, n int) []int {
	n = min(n, total)
	out := make([]int, 0, n)
	for i := range n {
		out = append(out, i*total/n)
	}
	return out
}

// Actions are the Temporal Cloud billable actions of a saga, estimated
// from its histories the way Temporal Cloud counts them
// (https://docs.temporal.io/cloud/actions), summed over its workflow and
// children. What leaves no event in a history is not counted: queries,
// rejected updates, activity heartbeats, and the extra workflow task
// heartbeats of a local activity that outlasts its workflow task.
type Actions struct {
	// WorkflowsStarted: one per workflow started (by a client, a
	// signal-with-start, a continue-as-new or a parent: a child counts
	// here, in its own history).
	WorkflowsStarted int
	// ActivityAttempts: one per attempt of an activity, retries included
	// (the attempt number of its ActivityTaskStarted event, which the
	// server records once, for the last attempt).
	ActivityAttempts int
	// LocalActivities: one per workflow task that ran local activities,
	// however many it ran and retried (the LocalActivity markers it
	// recorded name their workflow task).
	LocalActivities int
	// TimersStarted: one per timer, the SDK's implicit ones (AwaitWithTimeout)
	// included.
	TimersStarted int
	// SearchAttributeUpserts: one per UpsertWorkflowSearchAttributes, however
	// many attributes it sets, except the TemporalChangeVersion upserts
	// workflow.GetVersion makes, which are free.
	SearchAttributeUpserts int
	// SignalsSent: one per signal, from a client or a workflow, counted where
	// it arrived.
	SignalsSent int
	// UpdatesAccepted: one per accepted update (a rejected one also counts
	// but leaves no event).
	UpdatesAccepted int
	// SideEffects: one per side effect recorded (a mutable side effect
	// records a marker only when its value changes).
	SideEffects int
}

// Total is the number of billable actions.
func (a Actions) Total() int {
	return a.WorkflowsStarted + a.ActivityAttempts + a.LocalActivities + a.TimersStarted +
		a.SearchAttributeUpserts + a.SignalsSent + a.UpdatesAccepted + a.SideEffects
}

// Add returns the sum of two counts.
func (a Actions) Add(o Actions) Actions {
	return Actions{
		WorkflowsStarted:       a.WorkflowsStarted + o.WorkflowsStarted,
		ActivityAttempts:       a.ActivityAttempts + o.ActivityAttempts,
		LocalActivities:        a.LocalActivities + o.LocalActivities,
		TimersStarted:          a.TimersStarted + o.TimersStarted,
		SearchAttributeUpserts: a.SearchAttributeUpserts + o.SearchAttributeUpserts,
		SignalsSent:            a.SignalsSent + o.SignalsSent,
		UpdatesAccepted:        a.UpdatesAccepted + o.UpdatesAccepted,
		SideEffects:            a.SideEffects + o.SideEffects,
	}
}

// changeVersionAttribute is the search attribute workflow.GetVersion
// upserts; Temporal Cloud does not bill its upserts.
const changeVersionAttribute = "TemporalChangeVersion"

// countActions counts the billable actions of one workflow's history.
func countActions(events []*historypb.HistoryEvent) Actions {
	var a Actions
	localTasks := map[int64]bool{}
	for _, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			a.WorkflowsStarted++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a.ActivityAttempts += int(max(e.GetActivityTaskStartedEventAttributes().GetAttempt(), 1))
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			a.TimersStarted++
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			fields := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			if _, version := fields[changeVersionAttribute]; !version || len(fields) > 1 {
				a.SearchAttributeUpserts++
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			a.SignalsSent++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			a.UpdatesAccepted++
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			m := e.GetMarkerRecordedEventAttributes()
			switch m.GetMarkerName() {
			case "LocalActivity":
				localTasks[m.GetWorkflowTaskCompletedEventId()] = true
			case "SideEffect", "MutableSideEffect":
				a.SideEffects++
			}
		}
	}
	a.LocalActivities = len(localTasks)
	return a
}

// sagaActions counts the billable actions of a saga: its workflow and,
// recursively, every child workflow it started.
func sagaActions(ctx context.Context, read historyReader, workflowID, runID string) (Actions, error) {
	events, err := read(ctx, workflowID, runID)
	if err != nil {
		return Actions{}, err
	}
	total := countActions(events)
	_, children := countHistory(events)
	for _, ch := range children {
		a, err := sagaActions(ctx, read, ch.GetWorkflowId(), ch.GetRunId())
		if err != nil {
			return Actions{}, err
		}
		total = total.Add(a)
	}
	return total, nil
}
