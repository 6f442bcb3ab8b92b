package workflows

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// orderShape is what an order's history says of how it held its stock.
type orderShape struct {
	// ownHold: a Version marker of OwnHoldChange.
	ownHold bool
	// reservationChildren counts the ReserveInventoryWorkflow children started.
	reservationChildren int
	// inventoryActivities counts the inventory activities the order
	// scheduled itself.
	inventoryActivities int
	// publishActivities counts the PublishOrderEvent activities, localActivities
	// the local activities.
	publishActivities, localActivities int
}

func shapeOf(t *testing.T, h *historypb.History) orderShape {
	t.Helper()
	var s orderShape
	for _, e := range h.GetEvents() {
		if a := e.GetMarkerRecordedEventAttributes(); a != nil {
			switch a.GetMarkerName() {
			case "Version":
				var id string
				require.NoError(t, json.Unmarshal(a.GetDetails()["change-id"].GetPayloads()[0].GetData(), &id))
				s.ownHold = s.ownHold || id == OwnHoldChange
			case "LocalActivity":
				s.localActivities++
			}
		}
		if a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a.GetWorkflowType().GetName() == contract.ReservationWorkflowType {
			s.reservationChildren++
		}
		switch e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() {
		case "ReserveInventory", "CommitInventory", "ReleaseInventory":
			s.inventoryActivities++
		case "PublishOrderEvent":
			s.publishActivities++
		}
	}
	return s
}

// TestOrderHistoriesRecordedBeforeOwnHoldReplay: an order started before
// OwnHoldChange (no version marker, a child reservation saga, its outcome
// published by a regular activity) replays on the current code, and so
// finishes on it the way it started.
func TestOrderHistoriesRecordedBeforeOwnHoldReplay(t *testing.T) {
	for _, e := range orderEndings {
		t.Run(e, func(t *testing.T) {
			h := loadTransferHistory(t, e+".json")
			s := shapeOf(t, h)
			require.False(t, s.ownHold, "recorded before the change")
			require.Equal(t, 1, s.reservationChildren)
			require.Zero(t, s.inventoryActivities)
			require.Equal(t, 1, s.publishActivities)
			require.Zero(t, s.localActivities)

			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflow(OrderWorkflow)
			require.NoError(t, replayer.ReplayWorkflowHistory(nil, h))
		})
	}
}

// TestOrderOwnHoldIsVersioned proves the version check is what keeps the
// old histories replaying: the same code told that every order is at the
// new version fails them as non-deterministic.
func TestOrderOwnHoldIsVersioned(t *testing.T) {
	for _, e := range orderEndings {
		t.Run(e, func(t *testing.T) {
			replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{&newestVersion{}},
			})
			require.NoError(t, err)
			replayer.RegisterWorkflow(OrderWorkflow)
			err = replayer.ReplayWorkflowHistory(nil, loadTransferHistory(t, e+".json"))
			require.ErrorContains(t, err, "TMPRL1100", "the SDK's non-determinism error")
		})
	}
}

// TestOrderLocalStepsAreVersioned: an order recorded at ownHold, told
// that it is at localOrderSteps, fails as non-deterministic where it
// commits with a regular activity; only the version keeps it replaying.
func TestOrderLocalStepsAreVersioned(t *testing.T) {
	for _, e := range []string{"order_confirmed", "order_compensation_retried"} {
		t.Run(e, func(t *testing.T) {
			replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{&newestVersion{}},
			})
			require.NoError(t, err)
			replayer.RegisterWorkflow(OrderWorkflow)
			err = replayer.ReplayWorkflowHistory(nil, loadTransferHistory(t, e+"_v1.json"))
			require.ErrorContains(t, err, "TMPRL1100", "the SDK's non-determinism error")
		})
	}
}

// TestOrderHistoriesHoldTheirOwnStock: the orders recorded since
// OwnHoldChange hold the version marker, reserve with their own
// activities, start no reservation saga and publish their outcome locally.
func TestOrderHistoriesHoldTheirOwnStock(t *testing.T) {
	for _, e := range orderEndings {
		for _, file := range []string{e + "_v1.json", e + "_v2.json"} {
			t.Run(file, func(t *testing.T) {
				s := shapeOf(t, loadTransferHistory(t, file))
				require.True(t, s.ownHold)
				require.Zero(t, s.reservationChildren)
				require.Positive(t, s.inventoryActivities, "the reserve at least")
				require.Zero(t, s.publishActivities)
				require.Positive(t, s.localActivities)
			})
		}
	}
}

// TestOrderConfirmedCommitsLocally: a confirmed order recorded at
// localOrderSteps reserves with a regular activity and commits and
// publishes with local ones: 4 workflow tasks and 1 activity task of its
// own.
func TestOrderConfirmedCommitsLocally(t *testing.T) {
	h := loadTransferHistory(t, "order_confirmed_v2.json")
	require.Equal(t, orderShape{ownHold: true, inventoryActivities: 1, localActivities: 2}, shapeOf(t, h))
	require.Equal(t, transferTasks{4, 4, 1}, countTransferTasks(h))
}

// TestOrderStartedBeforeOwnHoldFinishesOnIt starts an order on a worker
// that behaves as the code before OwnHoldChange (its GetVersion records
// nothing and answers workflow.DefaultVersion), stops that worker once the
// order started its reservation child, and lets a worker with the current
// code finish it: the order completes as it started, with its child
// reservation, never recording the version. A new order on the current
// worker takes the new path.
func TestOrderStartedBeforeOwnHoldFinishesOnIt(t *testing.T) {
	c := temporaltest.Client(t)
	queue := temporaltest.TaskQueue(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	old := workerBeforeChange(c, queue)
	old.RegisterWorkflow(OrderWorkflow)
	old.RegisterWorkflow(ReserveInventoryWorkflow) // no activities: the reserve waits for the new worker
	require.NoError(t, old.Start())
	order := testOrder
	order.OrderID = "before-own-hold-" + queue
	run, err := c.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, queue), OrderWorkflow, order)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for shapeOf(t, fetchHistory(ctx, t, c, run.GetID(), run.GetRunID())).reservationChildren == 0 {
		require.True(t, time.Now().Before(deadline), "the old worker never started the reservation child")
		time.Sleep(20 * time.Millisecond)
	}
	old.Stop()

	current := worker.New(c, queue, worker.Options{})
	Register(current)
	current.RegisterActivity(&standIns{})
	require.NoError(t, current.Start())
	defer current.Stop()

	var res contract.OrderResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, contract.OrderConfirmed, res.Outcome, res.Error)
	s := shapeOf(t, fetchHistory(ctx, t, c, run.GetID(), run.GetRunID()))
	require.Equal(t, orderShape{reservationChildren: 1, publishActivities: 1}, s, "finished as it started")

	order.OrderID = "after-own-hold-" + queue
	run, err = c.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, queue), OrderWorkflow, order)
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, contract.OrderConfirmed, res.Outcome, res.Error)
	s = shapeOf(t, fetchHistory(ctx, t, c, run.GetID(), run.GetRunID()))
	require.Equal(t, orderShape{ownHold: true, inventoryActivities: 1, localActivities: 2}, s, "a new order holds its own stock and commits it locally")
}
