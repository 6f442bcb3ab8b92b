package main

import (
	"cmp"
	"context"
	"slices"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// Path splits a saga's time along its critical path: from its workflow's
// start to its end, each moment is counted once, in what the saga was
// waiting for then. While the parent waits for a child, the moment is the
// child's (and, down the tree, its children's), never both, so the parts
// add up to the saga's span in its histories (Total).
type Path struct {
	// FirstTaskQueue is the first workflow task of a workflow (the saga's
	// or a child's) waiting for a poller: scheduled → started.
	FirstTaskQueue time.Duration
	// WorkflowTaskQueue is every later workflow task waiting for a poller.
	WorkflowTaskQueue time.Duration
	// WorkflowTaskRun is the worker running workflow code and the server
	// recording its commands (started → completed, failed or timed out).
	WorkflowTaskRun time.Duration
	// ActivityQueue is an activity waiting for a poller (scheduled →
	// started).
	ActivityQueue time.Duration
	// ActivityRun is an activity running until its result is recorded;
	// for the real activities it holds the command's trip through RabbitMQ
	// and the service and the reply's way back.
	ActivityRun time.Duration
	// Server is the rest: the server starting children, delivering
	// signals and children's results, firing timers.
	Server time.Duration
}

// Total is the sum of the parts.
func (p Path) Total() time.Duration {
	return p.FirstTaskQueue + p.WorkflowTaskQueue + p.WorkflowTaskRun + p.ActivityQueue + p.ActivityRun + p.Server
}

// Add returns the sum of two paths.
func (p Path) Add(o Path) Path {
	return Path{
		FirstTaskQueue:    p.FirstTaskQueue + o.FirstTaskQueue,
		WorkflowTaskQueue: p.WorkflowTaskQueue + o.WorkflowTaskQueue,
		WorkflowTaskRun:   p.WorkflowTaskRun + o.WorkflowTaskRun,
		ActivityQueue:     p.ActivityQueue + o.ActivityQueue,
		ActivityRun:       p.ActivityRun + o.ActivityRun,
		Server:            p.Server + o.Server,
	}
}

// Div returns every part divided by n (a mean over n sagas); n <= 0 gives
// the zero Path.
func (p Path) Div(n int) Path {
	if n <= 0 {
		return Path{}
	}
	d := time.Duration(n)
	return Path{p.FirstTaskQueue / d, p.WorkflowTaskQueue / d, p.WorkflowTaskRun / d, p.ActivityQueue / d, p.ActivityRun / d, p.Server / d}
}

// criticalPath splits the span of the workflow root's history (its first
// event to its last) along the critical path. histories holds the
// histories of root's children, and theirs, by workflow id; a child
// without one counts as Server time.
func criticalPath(root []*historypb.HistoryEvent, histories map[string][]*historypb.HistoryEvent) Path {
	events := byTime(root)
	if len(events) < 2 {
		return Path{}
	}
	var p Path
	walkPath(&p, events, histories, eventTime(events[0]), eventTime(events[len(events)-1]))
	return p
}

// walkPath adds to p the window (from, to] of one workflow's events
// (sorted by time). Each gap between consecutive moments is counted by
// the workflow's state in it: a workflow task scheduled and not started is
// queueing, one started is running; otherwise the workflow waits for
// what the event closing the gap reports (an activity starting or ending,
// a child's signal or result: then the child's own window is walked
// instead), or else for an activity still queued or running. The gap from the last event to `to` is Server time: the
// server delivering this workflow's result or signal to its parent.
func walkPath(p *Path, events []*historypb.HistoryEvent, histories map[string][]*historypb.HistoryEvent, from, to time.Time) {
	var (
		taskScheduled, taskRunning          bool
		tasksStarted                        int
		activitiesQueued, activitiesRunning int
	)
	prev := from
	for _, e := range events {
		t := eventTime(e)
		if t.After(to) {
			break
		}
		if t.After(prev) {
			gap := t.Sub(prev)
			switch {
			case taskRunning:
				p.WorkflowTaskRun += gap
			case taskScheduled && tasksStarted == 0:
				p.FirstTaskQueue += gap
			case taskScheduled:
				p.WorkflowTaskQueue += gap
			default:
				switch e.GetEventType() {
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
					p.ActivityQueue += gap
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
					enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
					enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
					enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
					p.ActivityRun += gap
				default:
					child, ok := histories[childWaitedFor(e)]
					switch {
					case ok:
						walkPath(p, byTime(child), histories, prev, t)
					case activitiesRunning > 0:
						p.ActivityRun += gap
					case activitiesQueued > 0:
						p.ActivityQueue += gap
					default:
						p.Server += gap
					}
				}
			}
			prev = t
		}
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			taskScheduled = true
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			taskScheduled, taskRunning = false, true
			tasksStarted++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			taskRunning = false
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			activitiesQueued++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			activitiesQueued, activitiesRunning = max(0, activitiesQueued-1), activitiesRunning+1
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			if activitiesRunning > 0 {
				activitiesRunning--
			} else {
				activitiesQueued = max(0, activitiesQueued-1) // timed out before it started
			}
		}
	}
	if to.After(prev) {
		p.Server += to.Sub(prev)
	}
}

// childWaitedFor is the workflow id of the child whose result or signal
// the event delivers, empty for any other event.
func childWaitedFor(e *historypb.HistoryEvent) string {
	var we *commonpb.WorkflowExecution
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
		we = e.GetChildWorkflowExecutionCompletedEventAttributes().GetWorkflowExecution()
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
		we = e.GetChildWorkflowExecutionFailedEventAttributes().GetWorkflowExecution()
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
		we = e.GetChildWorkflowExecutionCanceledEventAttributes().GetWorkflowExecution()
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
		we = e.GetChildWorkflowExecutionTimedOutEventAttributes().GetWorkflowExecution()
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
		we = e.GetChildWorkflowExecutionTerminatedEventAttributes().GetWorkflowExecution()
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		we = e.GetWorkflowExecutionSignaledEventAttributes().GetExternalWorkflowExecution()
	}
	return we.GetWorkflowId()
}

// byTime returns the events ordered by time, ties by event id: an
// activity's started event is written when the activity closes, after
// events that happened while it ran.
func byTime(events []*historypb.HistoryEvent) []*historypb.HistoryEvent {
	out := slices.Clone(events)
	slices.SortStableFunc(out, func(a, b *historypb.HistoryEvent) int {
		if c := eventTime(a).Compare(eventTime(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.GetEventId(), b.GetEventId())
	})
	return out
}

func eventTime(e *historypb.HistoryEvent) time.Time { return e.GetEventTime().AsTime() }

// sagaPath reads a saga's workflow and every child below it and returns
// its critical path with its span (first event to last of its
// workflow's history).
func sagaPath(ctx context.Context, read historyReader, workflowID, runID string) (Path, error) {
	root, err := read(ctx, workflowID, runID)
	if err != nil {
		return Path{}, err
	}
	histories := map[string][]*historypb.HistoryEvent{}
	pending := [][]*historypb.HistoryEvent{root}
	for len(pending) > 0 {
		events := pending[0]
		pending = pending[1:]
		_, children := countHistory(events)
		for _, ch := range children {
			h, err := read(ctx, ch.GetWorkflowId(), ch.GetRunId())
			if err != nil {
				return Path{}, err
			}
			histories[ch.GetWorkflowId()] = h
			pending = append(pending, h)
		}
	}
	return criticalPath(root, histories), nil
}

// cachedHistory reads each history once, so that counting a saga's tasks,
// walking its critical path and finding its longest wait read the server
// once between them.
func cachedHistory(read historyReader) historyReader {
	seen := map[string][]*historypb.HistoryEvent{}
	return func(ctx context.Context, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
		key := workflowID + "/" + runID
		if h, ok := seen[key]; ok {
			return h, nil
		}
		h, err := read(ctx, workflowID, runID)
		if err != nil {
			return nil, err
		}
		seen[key] = h
		return h, nil
	}
}
