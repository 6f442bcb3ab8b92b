package workflows

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// transferTasks are the tasks a transfer cost, counted from its history.
type transferTasks struct {
	// WorkflowTasks counts WorkflowTaskScheduled events; every one was
	// also started (WorkflowTaskStarted), which started counts.
	WorkflowTasks, started int
	// ActivityTasks counts ActivityTaskScheduled events.
	ActivityTasks int
}

func countTransferTasks(h *historypb.History) transferTasks {
	var c transferTasks
	for _, e := range h.GetEvents() {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			c.WorkflowTasks++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			c.started++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			c.ActivityTasks++
		}
	}
	return c
}

// publishes says how a history published the transfer's outcome: the
// PublishTransferEvent activities it scheduled and the local activities
// and version markers it recorded.
func publishes(h *historypb.History) (activities, localActivities, versionMarkers int) {
	for _, e := range h.GetEvents() {
		if a := e.GetActivityTaskScheduledEventAttributes(); a.GetActivityType().GetName() == "PublishTransferEvent" {
			activities++
		}
		switch e.GetMarkerRecordedEventAttributes().GetMarkerName() {
		case "LocalActivity":
			localActivities++
		case "Version":
			versionMarkers++
		}
	}
	return activities, localActivities, versionMarkers
}

func loadTransferHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	return h
}

// transferTaskCases are what each way a transfer ends costs at each
// version of LocalOutcomePublishChange: the local publish (v1) saves one
// workflow task and one activity task per transfer; the local forward
// steps (v2) save the withdraw's and the deposit's, leaving a completed
// transfer one workflow task.
var transferTaskCases = []struct {
	v0File, v1File, v2File string
	v0, v1, v2             transferTasks
}{
	{"transfer_completed.json", "transfer_completed_v1.json", "transfer_completed_v2.json",
		transferTasks{4, 4, 3}, transferTasks{3, 3, 2}, transferTasks{1, 1, 0}},
	{"transfer_insufficient_funds.json", "transfer_insufficient_funds_v1.json", "transfer_insufficient_funds_v2.json",
		transferTasks{3, 3, 2}, transferTasks{2, 2, 1}, transferTasks{1, 1, 0}},
	// The refund, a compensation, stays a regular activity.
	{"transfer_compensated.json", "transfer_compensated_v1.json", "transfer_compensated_v2.json",
		transferTasks{5, 5, 4}, transferTasks{4, 4, 3}, transferTasks{2, 2, 1}},
}

// TestTransferHistoriesRecordedBeforeLocalPublishReplay: a transfer started
// before LocalOutcomePublishChange (workflow.DefaultVersion: no version
// marker, the outcome published by a regular activity) replays on the
// current code, and so finishes on it the way it started.
func TestTransferHistoriesRecordedBeforeLocalPublishReplay(t *testing.T) {
	for _, tc := range transferTaskCases {
		t.Run(tc.v0File, func(t *testing.T) {
			h := loadTransferHistory(t, tc.v0File)
			acts, locals, versions := publishes(h)
			require.Equal(t, [3]int{1, 0, 0}, [3]int{acts, locals, versions}, "recorded before the change")
			require.Equal(t, tc.v0, countTransferTasks(h))

			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflow(TransferWorkflow)
			require.NoError(t, replayer.ReplayWorkflowHistory(nil, h))
		})
	}
}

// TestTransferLocalPublishIsVersioned proves the version check is what
// keeps the old histories replaying: the same code told that every
// transfer is at the newest version fails them as non-deterministic.
func TestTransferLocalPublishIsVersioned(t *testing.T) {
	for _, tc := range transferTaskCases {
		for _, file := range []string{tc.v0File, tc.v1File} {
			t.Run(file, func(t *testing.T) {
				replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
					Interceptors: []interceptor.WorkerInterceptor{&newestVersion{}},
				})
				require.NoError(t, err)
				replayer.RegisterWorkflow(TransferWorkflow)
				err = replayer.ReplayWorkflowHistory(nil, loadTransferHistory(t, file))
				require.ErrorContains(t, err, "TMPRL1100", "the SDK's non-determinism error")
			})
		}
	}
}

// TestTransferHistoriesPublishLocally: the histories recorded at
// localOutcomePublish hold the version marker and publish the outcome with
// a local activity, at one workflow task and one activity task fewer; those
// recorded at localTransferSteps also run the withdraw and the deposit
// locally.
func TestTransferHistoriesPublishLocally(t *testing.T) {
	for _, tc := range transferTaskCases {
		t.Run(tc.v1File, func(t *testing.T) {
			h := loadTransferHistory(t, tc.v1File)
			acts, locals, versions := publishes(h)
			require.Equal(t, [3]int{0, 1, 1}, [3]int{acts, locals, versions})
			require.Equal(t, tc.v1, countTransferTasks(h))
		})
		t.Run(tc.v2File, func(t *testing.T) {
			h := loadTransferHistory(t, tc.v2File)
			acts, locals, versions := publishes(h)
			require.Equal(t, [2]int{0, 1}, [2]int{acts, versions})
			require.Greater(t, locals, 1, "the publish and at least the withdraw")
			require.Equal(t, tc.v2, countTransferTasks(h))
		})
	}
}

// TestTransferTasksOnTheDevServer counts the tasks of transfers run now on
// a real dev server: a completed transfer costs 1 workflow task and no
// activity task (its steps and its outcome publish are local), within the
// target of 3 and 2.
func TestTransferTasksOnTheDevServer(t *testing.T) {
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflow(TransferWorkflow)
		w.RegisterActivity(&scriptedLedger{})
	})
	for i, rc := range replayCases {
		t.Run(rc.file, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			opts := contract.TransferStartOptions(rc.input.TransferID+"-tasks-"+queue, queue)
			run, err := c.ExecuteWorkflow(ctx, opts, TransferWorkflow, rc.input)
			require.NoError(t, err)
			require.NoError(t, run.Get(ctx, nil))
			h := transferHistory(ctx, t, c, run)

			got := countTransferTasks(h)
			require.Equal(t, transferTaskCases[i].v2, got, "%s", rc.file)
			if rc.outcome == contract.TransferCompleted {
				require.LessOrEqual(t, got.WorkflowTasks, 3)
				require.LessOrEqual(t, got.started, 3)
				require.LessOrEqual(t, got.ActivityTasks, 2)
			}
		})
	}
}

// TestTransferStartedBeforeLocalPublishFinishesOnIt starts a transfer on a
// worker that behaves as the code before LocalOutcomePublishChange (its
// GetVersion records nothing and answers workflow.DefaultVersion), stops
// that worker after the first workflow task, and lets a worker with the
// current code finish it: the transfer completes as it started, publishing
// with a regular activity and never recording the version.
func TestTransferStartedBeforeLocalPublishFinishesOnIt(t *testing.T) {
	c := temporaltest.Client(t)
	queue := temporaltest.TaskQueue(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	old := workerBeforeChange(c, queue)
	old.RegisterWorkflow(TransferWorkflow) // no activities: the withdraw waits for the new worker
	require.NoError(t, old.Start())
	in := replayCases[0].input
	run, err := c.ExecuteWorkflow(ctx, contract.TransferStartOptions(in.TransferID+"-old-"+queue, queue), TransferWorkflow, in)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if acts := countTransferTasks(transferHistory(ctx, t, c, run)).ActivityTasks; acts > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the old worker never scheduled the withdraw")
		time.Sleep(20 * time.Millisecond)
	}
	old.Stop()

	current := worker.New(c, queue, worker.Options{})
	current.RegisterWorkflow(TransferWorkflow)
	current.RegisterActivity(&scriptedLedger{})
	require.NoError(t, current.Start())
	defer current.Stop()

	var res contract.TransferResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, contract.TransferCompleted, res.Outcome)
	acts, locals, versions := publishes(transferHistory(ctx, t, c, run))
	require.Equal(t, [3]int{1, 0, 0}, [3]int{acts, locals, versions}, "published by a regular activity, as it started")
}

func transferHistory(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	return h
}

// workerBeforeChange is a worker on queue whose workflows behave as the
// code before every versioned change (codeBeforeChange); it gives up its
// sticky queue within a second once stopped, so another worker takes over.
func workerBeforeChange(c client.Client, queue string) worker.Worker {
	return worker.New(c, queue, worker.Options{
		Interceptors:                 []interceptor.WorkerInterceptor{&codeBeforeChange{}},
		StickyScheduleToStartTimeout: time.Second,
	})
}

// newestVersion makes every workflow.GetVersion return its maximum
// supported version, as code without the version check would behave.
type newestVersion struct {
	interceptor.WorkerInterceptorBase
}

func (*newestVersion) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &newestVersionInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type newestVersionInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (i *newestVersionInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&newestVersionOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type newestVersionOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (*newestVersionOutbound) GetVersion(_ workflow.Context, _ string, _, maxSupported workflow.Version) workflow.Version {
	return maxSupported
}

// codeBeforeChange makes workflow.GetVersion behave as if the code had no
// version check yet: nothing recorded, workflow.DefaultVersion returned.
type codeBeforeChange struct {
	interceptor.WorkerInterceptorBase
}

func (*codeBeforeChange) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &codeBeforeChangeInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type codeBeforeChangeInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (i *codeBeforeChangeInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&codeBeforeChangeOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type codeBeforeChangeOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (*codeBeforeChangeOutbound) GetVersion(workflow.Context, string, workflow.Version, workflow.Version) workflow.Version {
	return workflow.DefaultVersion
}
