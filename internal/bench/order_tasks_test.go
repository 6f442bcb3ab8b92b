package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/workflows"
)

// TestMain shares one Temporal dev server among the tests that need one;
// the others never start it.
func TestMain(m *testing.M) { temporaltest.Main(m) }

// refusingActivities are noopActivities that refuse what an order's
// failure paths need: sku "out-of-stock" is refused its reservation,
// account "poor" its withdrawal, and a reservation whose id holds
// "uncommittable" its commit.
type refusingActivities struct{ noopActivities }

func (r refusingActivities) ReserveInventory(ctx context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	for _, l := range cmd.Lines {
		if l.SKU == "out-of-stock" {
			return activities.CommandResult{}, activities.RejectionError(events.Reply{CommandType: events.CmdInventoryReserve, Status: events.ReplyRejected, Reason: events.ReasonInsufficientStock})
		}
	}
	return r.noopActivities.ReserveInventory(ctx, cmd)
}

func (r refusingActivities) Withdraw(ctx context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	if cmd.AccountID == "poor" {
		return activities.CommandResult{}, activities.RejectionError(events.Reply{CommandType: events.CmdLedgerWithdraw, Status: events.ReplyRejected, Reason: events.ReasonInsufficientFunds})
	}
	return r.noopActivities.Withdraw(ctx, cmd)
}

func (r refusingActivities) CommitInventory(ctx context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	if strings.Contains(cmd.ReservationID, "uncommittable") {
		return activities.CommandResult{}, activities.RejectionError(events.Reply{CommandType: events.CmdInventoryCommit, Status: events.ReplyRejected, Reason: events.ReasonReservationNotHeld})
	}
	return r.noopActivities.CommitInventory(ctx, cmd)
}

// TestOrderSagaTasksOnTheDevServer runs order sagas on a dev server and
// counts, from their histories and their children's, the tasks they cost
// the server and the billable actions: a confirmed order costs at most 9
// workflow tasks and 4 activity tasks, its payment's included (17 and 6
// when it ran a child reservation saga). It counts, it does not time.
func TestOrderSagaTasksOnTheDevServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs sagas on a dev server")
	}
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		workflows.Register(w)
		w.RegisterActivity(&refusingActivities{})
	})
	tests := []struct {
		name    string
		mutate  func(o *events.OrderPlaced)
		outcome contract.OrderOutcome
		// maxima of the saga's tasks, summed over the order and its children
		workflows, workflowTasks, activityTasks int
		actions                                 Actions
	}{
		{
			name: "confirmed", mutate: func(*events.OrderPlaced) {}, outcome: contract.OrderConfirmed,
			workflows: 2, workflowTasks: 5, activityTasks: 1,
			// The order: started, the reserve, the commit and its outcome
			// published locally in one task, the hold's timer, its ids and
			// two statuses upserted. The payment: started, withdraw,
			// deposit and publish locally in its one task, two statuses.
			actions: Actions{WorkflowsStarted: 2, ActivityAttempts: 1, LocalActivities: 2, TimersStarted: 1, SearchAttributeUpserts: 5},
		},
		{
			name: "payment refused: the stock released", mutate: func(o *events.OrderPlaced) { o.CustomerID = "poor" }, outcome: contract.OrderCancelled,
			workflows: 2, workflowTasks: 6, activityTasks: 2,
			actions: Actions{WorkflowsStarted: 2, ActivityAttempts: 2, LocalActivities: 2, TimersStarted: 1, SearchAttributeUpserts: 7},
		},
		{
			name: "reservation refused: nothing to undo", mutate: func(o *events.OrderPlaced) { o.Lines[0].SKU = "out-of-stock" }, outcome: contract.OrderCancelled,
			workflows: 1, workflowTasks: 2, activityTasks: 1,
			// The refusal and the outcome published locally in one task.
			actions: Actions{WorkflowsStarted: 1, ActivityAttempts: 1, LocalActivities: 1, SearchAttributeUpserts: 4},
		},
		{
			name: "commit refused: the payment refunded, then the stock released", mutate: func(o *events.OrderPlaced) { o.OrderID += "-uncommittable" }, outcome: contract.OrderCancelled,
			workflows: 3, workflowTasks: 9, activityTasks: 2,
			actions: Actions{WorkflowsStarted: 3, ActivityAttempts: 2, LocalActivities: 4, TimersStarted: 1, SearchAttributeUpserts: 8},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			order := events.OrderPlaced{
				OrderID: fmt.Sprintf("tasks-%d-%s", i, queue), CustomerID: "cust", MerchantID: "shop", Currency: "EUR",
				Lines: []events.OrderLine{{SKU: "mug", Quantity: 2, UnitPrice: 1000}}, Total: 2000,
			}
			tc.mutate(&order)
			run, err := c.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, queue), contract.OrderWorkflowType, order)
			require.NoError(t, err)
			var res contract.OrderResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, tc.outcome, res.Outcome, res.Error)

			read := temporalHistory(c)
			tasks, err := sagaTasks(ctx, read, run.GetID(), run.GetRunID())
			require.NoError(t, err)
			actions, err := sagaActions(ctx, read, run.GetID(), run.GetRunID())
			require.NoError(t, err)
			t.Logf("%s: %d workflows, %d workflow tasks, %d activity tasks, %d billable actions %+v",
				tc.name, tasks.Workflows, tasks.WorkflowTasks, tasks.ActivityTasks, actions.Total(), actions)
			require.Equal(t, tc.workflows, tasks.Workflows, "the order and its transfers; no reservation saga")
			require.LessOrEqual(t, tasks.WorkflowTasks, tc.workflowTasks)
			require.LessOrEqual(t, tasks.ActivityTasks, tc.activityTasks)
			require.Equal(t, tc.actions, actions)
		})
	}
}
