package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// OwnHoldChange is the workflow.GetVersion change id under which
// OrderWorkflow holds its stock with its own activities (version 1):
// reserve, commit and release are activities of the order, the hold's
// time-to-live is a timer of the order, and the outcome events are
// published by local activities. Orders recorded before the change
// (workflow.DefaultVersion) run a child ReserveInventoryWorkflow that
// signals them once the stock is held and waits for their commit signal,
// and publish with regular activities. A confirmed order then costs 8
// workflow tasks and 4 activity tasks, its transfer included, instead of
// 17 and 6. Histories hold the id: never rename it or reuse it for another
// change.
const OwnHoldChange = "order-own-stock-hold"

// The versions of OwnHoldChange: at ownHold the order holds its stock
// itself; at localOrderSteps it also runs its commit as a local activity
// first (commandLocally), and its payment's transfer does the same with
// its withdraw and deposit, so that a confirmed order costs 5 workflow
// tasks and 1 activity task (the reserve), its transfer included.
const (
	ownHold         workflow.Version = 1
	localOrderSteps workflow.Version = 2
)

// ReservationTTLTimer is the summary of the timer of an order's hold: when
// it fires before the commit, the stock is released with reason "expired".
const ReservationTTLTimer = "reservation-ttl"

// hold is the stock an order holds itself (OwnHoldChange).
type hold struct {
	// reserve is the reserve activity, nil until scheduled.
	reserve workflow.Future
	// reserved: the reserve succeeded, so the stock is held.
	reserved bool
	// cancelTTL stops the time-to-live timer; nil until it runs.
	cancelTTL workflow.CancelFunc
	// expiry is the release the time-to-live started, nil unless it fired.
	expiry workflow.Future
}

func (o *orderSaga) inventoryCommand(step, reason string) activities.InventoryCommand {
	cmd := activities.InventoryCommand{Step: step, ReservationID: o.order.OrderID, Reason: reason}
	if step == contract.StepReserveInventory {
		cmd.OrderID = o.order.OrderID
		cmd.Lines = make([]events.StockLine, len(o.order.Lines))
		for i, l := range o.order.Lines {
			cmd.Lines[i] = events.StockLine{SKU: l.SKU, Quantity: l.Quantity}
		}
	}
	return cmd
}

// inventory schedules an inventory command as an activity of the order.
func (o *orderSaga) inventory(ctx workflow.Context, retry *temporal.RetryPolicy, activity any, cmd activities.InventoryCommand) workflow.Future {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: CommandTimeout,
		RetryPolicy:         retry,
	})
	return workflow.ExecuteActivity(ctx, activity, cmd)
}

// forwardInventory schedules a forward inventory step (reserve, commit),
// retried through infrastructure failures until the order's deadline
// (deadlineOptions); its failure is the service's answer, a cancellation
// or a *DeadlineError (givenUp).
// With local, it runs as a local activity first (commandLocally).
func (o *orderSaga) forwardInventory(ctx workflow.Context, retry *temporal.RetryPolicy, activity any, cmd activities.InventoryCommand, local bool) workflow.Future {
	regular := func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(deadlineOptions(ctx, o.deadline, cmd.Step, retry), activity, cmd)
	}
	if local {
		return commandLocally(ctx, o.deadline, cmd.Step, retry, activity, cmd, regular)
	}
	return regular(ctx)
}

// reserveStock reserves every line (all or nothing) and starts the hold's
// time-to-live. The reserve runs on the workflow's own context, not
// stepCtx: a customer's cancel interrupts the step at once, and the
// release compensation waits for the reserve's outcome and undoes it, in
// reverse order. A refusal publishes inventory.reservation_failed.
func (o *orderSaga) reserveStock(stepCtx workflow.Context) error {
	// The reserve stays a regular activity at every version: a cancel that
	// comes while it runs reaches the order before the payment starts,
	// which a local activity, holding the workflow task until the reserve's
	// reply, could not promise.
	o.hold.reserve = o.forwardInventory(o.root, reserveRetry(), o.a.ReserveInventory, o.inventoryCommand(contract.StepReserveInventory, ""), false)
	var err error
	done := false
	sel := workflow.NewSelector(stepCtx)
	sel.AddFuture(o.hold.reserve, func(f workflow.Future) {
		err, done = givenUp(f.Get(stepCtx, nil), contract.StepReserveInventory, o.deadline), true
	})
	sel.AddReceive(stepCtx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(stepCtx)
	if !done {
		return temporal.NewCanceledError(o.state.CancelReason)
	}
	if reason, lines, refused := activities.ReservationRejection(err); refused {
		dctx, cancel := workflow.NewDisconnectedContext(o.root)
		defer cancel()
		if perr := o.publishRefusal(dctx, reason, lines); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	if err != nil {
		return err
	}
	o.hold.reserved = true
	o.startTTL()
	return nil
}

// startTTL starts the hold's time-to-live. When it fires before the commit
// stopped it, the stock goes back at once (reason "expired"), and the
// order's commit then fails with the reservation's outcome "expired".
func (o *orderSaga) startTTL() {
	ttlCtx, cancel := workflow.WithCancel(o.root)
	o.hold.cancelTTL = cancel
	// The stock is held past the order's deadline, so that the order, not
	// the time-to-live, decides what becomes of it while its steps wait
	// out an outage.
	ttl := max(o.deadline.Sub(workflow.Now(o.root)), 0) + contract.DefaultReservationTTL
	timer := workflow.NewTimerWithOptions(ttlCtx, ttl, workflow.TimerOptions{Summary: ReservationTTLTimer})
	workflow.Go(ttlCtx, func(ctx workflow.Context) {
		if timer.Get(ctx, nil) != nil {
			return // stopped by the commit or a compensation
		}
		// Disconnected: the stock goes back even if the order is cancelled
		// meanwhile.
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		o.hold.expiry = o.inventory(dctx, releaseRetry(), o.a.ReleaseInventory,
			o.inventoryCommand(contract.StepReleaseInventory, events.ReleaseReasonExpired))
	})
}

func (o *orderSaga) stopTTL() {
	if o.hold.cancelTTL != nil {
		o.hold.cancelTTL()
	}
}

// commitStock sells the held stock. A hold that expired fails it with the
// reservation's outcome, once the expiry's release is done.
func (o *orderSaga) commitStock(ctx workflow.Context) error {
	o.stopTTL()
	if o.hold.expiry != nil {
		_ = o.hold.expiry.Get(ctx, nil) // a failed release is retried by the compensation
		return notCommitted(contract.ReservationResult{ReservationID: o.order.OrderID, Outcome: contract.ReservationExpired})
	}
	err := o.forwardInventory(ctx, commitRetry(), o.a.CommitInventory, o.inventoryCommand(contract.StepCommitInventory, ""), o.localSteps).Get(ctx, nil)
	return givenUp(err, contract.StepCommitInventory, o.deadline)
}

// releaseStock is the compensation of the reserve step. It waits for a
// reserve still in flight; when the reserve's outcome is unknown (it timed
// out or was cancelled), it resends it with the same command id (the
// service answers a known id with its stored reply and applies an unknown
// one now, so a late reserve cannot leave stock held), then releases the
// stock with reason "compensated". Stock the time-to-live already gave
// back, or that nothing holds (already released, refused), has nothing
// left to undo.
func (o *orderSaga) releaseStock(ctx workflow.Context) error {
	o.stopTTL()
	if o.hold.reserve == nil {
		return nil
	}
	if !o.hold.reserved {
		err := o.hold.reserve.Get(ctx, nil)
		if err != nil && !IsRejection(err) {
			err = o.inventory(ctx, releaseRetry(), o.a.ReserveInventory, o.inventoryCommand(contract.StepReserveInventory, "")).Get(ctx, nil)
		}
		if _, rejected := activities.RejectionReason(err); rejected {
			return nil
		}
		if err != nil {
			return err
		}
		o.hold.reserved = true
	}
	if o.hold.expiry != nil && o.hold.expiry.Get(ctx, nil) == nil {
		return nil
	}
	err := o.inventory(ctx, releaseRetry(), o.a.ReleaseInventory,
		o.inventoryCommand(contract.StepReleaseInventory, events.ReleaseReasonCompensated)).Get(ctx, nil)
	if reason, rejected := activities.RejectionReason(err); rejected &&
		(reason == events.ReasonReservationNotHeld || reason == events.ReasonUnknownReservation) {
		return nil
	}
	return err
}

// publishRefusal publishes inventory.reservation_failed with the reason
// and the lines the inventory could not hold.
func (o *orderSaga) publishRefusal(ctx workflow.Context, reason string, lines []events.StockLine) error {
	return publishLocally(ctx, contract.StepPublishReservationKO, o.a.PublishReservationFailed, activities.ReservationFailedEvent{
		Step:          contract.StepPublishReservationKO,
		ReservationID: o.order.OrderID,
		OrderID:       o.order.OrderID,
		Reason:        reason,
		FailedLines:   lines,
	})
}
