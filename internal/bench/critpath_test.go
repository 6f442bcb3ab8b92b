package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// hist builds a history from (ms, type) pairs with ids in order.
type hist []*historypb.HistoryEvent

func (h hist) add(ms int, typ enumspb.EventType) hist {
	return append(h, at(int64(len(h)+1), ms, typ))
}

// child adds an event that names a child: its start, its result, or a
// signal it sent.
func (h hist) child(ms int, typ enumspb.EventType, id string) hist {
	e := at(int64(len(h)+1), ms, typ)
	we := &commonpb.WorkflowExecution{WorkflowId: id, RunId: "run-" + id}
	switch typ {
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
		e.Attributes = &historypb.HistoryEvent_ChildWorkflowExecutionStartedEventAttributes{
			ChildWorkflowExecutionStartedEventAttributes: &historypb.ChildWorkflowExecutionStartedEventAttributes{WorkflowExecution: we}}
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
		e.Attributes = &historypb.HistoryEvent_ChildWorkflowExecutionCompletedEventAttributes{
			ChildWorkflowExecutionCompletedEventAttributes: &historypb.ChildWorkflowExecutionCompletedEventAttributes{WorkflowExecution: we}}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		e.Attributes = &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{
			WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{ExternalWorkflowExecution: we}}
	default:
		panic("no child in " + typ.String())
	}
	return append(h, e)
}

// task adds a workflow task scheduled at s, started at st, completed at c.
func (h hist) task(s, st, c int) hist {
	return h.add(s, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED).
		add(st, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED).
		add(c, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
}

// activity adds an activity scheduled at s, started at st, completed at c.
func (h hist) activity(s, st, c int) hist {
	return h.add(s, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).
		add(st, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED).
		add(c, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
}

func start(ms int) hist { return hist{}.add(ms, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) }

func (h hist) done(ms int) hist { return h.add(ms, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) }

func msPath(first, queue, run, aq, ar, server int) Path {
	d := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	return Path{FirstTaskQueue: d(first), WorkflowTaskQueue: d(queue), WorkflowTaskRun: d(run), ActivityQueue: d(aq), ActivityRun: d(ar), Server: d(server)}
}

func TestCriticalPath(t *testing.T) {
	// The order starts a child at 15 ms (the server records it started at
	// 30) and waits for it until 300; the child's first task was scheduled
	// at 20, while the parent still waited for the start to be recorded.
	child := start(20).task(20, 100, 110).activity(110, 120, 280).task(280, 285, 290).done(290)
	parentOf := func(childID string) hist {
		return start(0).task(0, 10, 15).
			add(15, enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED).
			child(30, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, childID).
			child(300, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED, childID).
			task(300, 310, 320).done(320)
	}
	// A reservation signals its parent when the stock is held (at 150 ms,
	// delivered at 160) and ends after the parent's commit signal.
	reservation := start(5).task(5, 40, 50).activity(50, 60, 140).task(140, 145, 150).
		add(150, enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED).
		add(200, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED).task(200, 205, 210).done(210)
	signalled := start(0).task(0, 2, 5).
		child(5, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, "reservation-1").
		child(160, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, "reservation-1").
		task(160, 170, 180).
		add(180, enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED).
		add(195, enumspb.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED).
		child(220, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED, "reservation-1").
		task(220, 230, 235).done(235)
	// An activity's started event is written when it closes: after a
	// signal that came in while it ran.
	outOfOrder := start(0).task(0, 10, 20).
		add(20, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).
		add(60, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED).
		add(60, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED).
		add(70, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED).
		add(75, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED).
		add(30, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED).
		add(100, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED).
		task(100, 104, 110).done(110)

	tests := []struct {
		name      string
		root      hist
		histories map[string][]*historypb.HistoryEvent
		want      Path
		span      int
	}{
		{"one workflow: a task, an activity, a task",
			start(0).task(0, 20, 25).activity(25, 90, 400).task(400, 430, 440).done(440), nil,
			msPath(20, 30, 15, 65, 310, 0), 440},
		{"a child's time is counted once, as the child's, not also as the parent's wait",
			parentOf("transfer-1"), map[string][]*historypb.HistoryEvent{"transfer-1": child},
			// first: parent 10 + child 30→100; queue: child 5 + parent 10;
			// run: 5 + 10 + 5 + 10; server: start 15→30, result 290→300.
			msPath(80, 15, 30, 10, 160, 25), 320},
		{"a child whose history is missing is server time",
			parentOf("transfer-1"), nil,
			msPath(10, 10, 15, 0, 0, 285), 320},
		{"a child's signal walks the child up to it, then the wait for its result the child again",
			signalled, map[string][]*historypb.HistoryEvent{"reservation-1": reservation},
			// (5, 160]: child first task 5→40 counted from 5, run 10, activity 10+80,
			// queue 5, run 5, then 150→160 delivery. (195, 220]: the child ran its
			// task 200→210 after the commit signal reached it 195→200.
			msPath(2+35, 10+5+10+5, 3+10+5+10+5+5, 10, 80, 10+15+5+10), 235},
		{"events out of time order are walked in time order", outOfOrder, nil,
			// 20→30 activity queue, 30→60 run, 60→70 task queue (a task is
			// scheduled though the activity still runs), 70→75 task run,
			// 75→100 activity run.
			msPath(10, 10+4, 10+5+6, 10, 30+25, 0), 110},
		{"an empty history has no path", nil, nil, Path{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := criticalPath(tt.root, tt.histories)
			require.Equal(t, tt.want, got)
			require.Equal(t, time.Duration(tt.span)*time.Millisecond, got.Total(), "the parts add up to the span of the root's history")
		})
	}
}

func TestSagaPathReadsEveryChildOnce(t *testing.T) {
	grandchild := start(40).task(40, 50, 60).done(60)
	child := start(20).task(20, 25, 30).
		child(35, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, "grandchild").
		child(70, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED, "grandchild").
		task(70, 75, 80).done(80)
	root := start(0).task(0, 5, 10).
		child(20, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, "child").
		child(90, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED, "child").
		task(90, 95, 100).done(100)
	histories := map[string][]*historypb.HistoryEvent{"order": root, "child": child, "grandchild": grandchild}
	reads := map[string]int{}
	read := cachedHistory(func(_ context.Context, id, run string) ([]*historypb.HistoryEvent, error) {
		reads[id+"/"+run]++
		return histories[id], nil
	})
	p, err := sagaPath(context.Background(), read, "order", "")
	require.NoError(t, err)
	require.Equal(t, 100*time.Millisecond, p.Total())
	// Every workflow's first task: the root's 0→5, the child's 20→25 and the
	// grandchild's 40→50, inside the child's wait for it.
	require.Equal(t, 20*time.Millisecond, p.FirstTaskQueue)
	_, err = sagaTasks(context.Background(), read, "order", "")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"order/": 1, "child/run-child": 1, "grandchild/run-grandchild": 1}, reads, "each history read once")
}
