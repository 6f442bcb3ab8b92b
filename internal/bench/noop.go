package main

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/events"
)

// noopActivities stand in for activities.Activities under the same
// activity names, for the pure-orchestration row: each returns at once
// what the workflows expect from an accepted command, without a broker or
// a service. A test checks it has every activity the real worker has.
type noopActivities struct{}

// accepted is what a command activity returns when its service accepted
// the command: its (deterministic) command id and type.
func accepted(ctx context.Context, typ, step string) activities.CommandResult {
	return activities.CommandResult{
		CommandID:   events.DeterministicID(activity.GetInfo(ctx).WorkflowExecution.ID, step),
		CommandType: typ,
	}
}

func (noopActivities) Withdraw(ctx context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	return accepted(ctx, events.CmdLedgerWithdraw, cmd.Step), nil
}

func (noopActivities) Deposit(ctx context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	return accepted(ctx, events.CmdLedgerDeposit, cmd.Step), nil
}

func (noopActivities) Refund(ctx context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	return accepted(ctx, events.CmdLedgerRefund, cmd.Step), nil
}

func (noopActivities) ReserveInventory(ctx context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	return accepted(ctx, events.CmdInventoryReserve, cmd.Step), nil
}

func (noopActivities) ReleaseInventory(ctx context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	return accepted(ctx, events.CmdInventoryRelease, cmd.Step), nil
}

func (noopActivities) CommitInventory(ctx context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	return accepted(ctx, events.CmdInventoryCommit, cmd.Step), nil
}

func (noopActivities) PublishTransferEvent(context.Context, activities.TransferEvent) error {
	return nil
}

func (noopActivities) PublishReservationFailed(context.Context, activities.ReservationFailedEvent) error {
	return nil
}

func (noopActivities) PublishOrderEvent(context.Context, activities.OrderEvent) error {
	return nil
}

// EmptyWorkflow does nothing: the ceiling row, the cost of starting a
// workflow, running its one workflow task and reading its result.
func EmptyWorkflow(workflow.Context) error { return nil }
