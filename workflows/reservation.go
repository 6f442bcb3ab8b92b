package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// ReserveInventoryWorkflow holds stock for an order: it sends
// inventory.reserve (all lines or none) and, once held, waits for a commit
// (contract.SignalCommit), a release (contract.SignalRelease) or the end of the time-to-live,
// which releases the stock with reason "expired". Commit and release are
// accepted as updates, which return the outcome, and as signals.
//
// A refused reservation publishes inventory.reservation_failed and fails
// with a non-retryable contract.ErrTypeReservationFailed error whose details are the
// reason code and the failed lines (read with activities.ReservationRejection).
// A commit that fails for good releases the stock and fails the workflow. A
// cancelled reservation releases what it holds (reason "compensated").
//
// When started as a child, it signals contract.SignalReservationHeld to its parent
// once the stock is held, so the parent knows it may go on.
func ReserveInventoryWorkflow(ctx workflow.Context, in contract.ReservationInput) (contract.ReservationResult, error) {
	if err := in.Validate(); err != nil {
		return contract.ReservationResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("invalid reservation: %v", err), contract.ErrTypeInvalidReservation, err)
	}
	saga, err := NewSaga(ctx, SagaOptions{})
	if err != nil {
		return contract.ReservationResult{}, err
	}
	r := &reservation{in: in, saga: saga, state: contract.ReservationState{ReservationID: in.ReservationID, Hold: contract.HoldReserving},
		deadline: sagaDeadline(ctx, in.Deadline, contract.DefaultReservationDeadline)}
	if err := r.register(ctx); err != nil {
		return contract.ReservationResult{}, err
	}
	res, err := r.run(ctx)
	r.result, r.err, r.done = res, err, true
	// Let update handlers waiting for the outcome return it before the
	// workflow closes.
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return res, err
}

// reservation is the state of one ReserveInventoryWorkflow run.
type reservation struct {
	a     *activities.Activities // nil: only its methods name the activities
	in    contract.ReservationInput
	saga  *Saga
	state contract.ReservationState
	// reserved: the reserve step succeeded, so the stock is held.
	reserved bool
	// deadline is when the reserve and the commit stop retrying.
	deadline time.Time

	done   bool
	result contract.ReservationResult
	err    error
}

func (r *reservation) register(ctx workflow.Context) error {
	// Replaces the saga's own status query with one that adds the hold.
	if err := workflow.SetQueryHandler(ctx, contract.QueryStatus, func() (contract.ReservationState, error) {
		st := r.state
		st.SagaState = r.saga.State()
		return st, nil
	}); err != nil {
		return fmt.Errorf("register %s query: %w", contract.QueryStatus, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.SignalCommit, r.updateCommit,
		workflow.UpdateHandlerOptions{Validator: r.validateCommit}); err != nil {
		return fmt.Errorf("register %s update: %w", contract.SignalCommit, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.SignalRelease, r.updateRelease,
		workflow.UpdateHandlerOptions{Validator: r.validateRelease}); err != nil {
		return fmt.Errorf("register %s update: %w", contract.SignalRelease, err)
	}
	// Signals wait in their channels until the stock is held, then take the
	// same path as the updates; an invalid one is logged and dropped, since
	// a signal has nobody to answer.
	logger := workflow.GetLogger(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, contract.SignalCommit)
		for {
			if err := workflow.Await(ctx, func() bool { return r.state.Hold != contract.HoldReserving }); err != nil {
				return
			}
			if !ch.Receive(ctx, nil) {
				return
			}
			if err := r.validateCommit(ctx); err != nil {
				logger.Warn("Commit signal ignored", "Error", err)
				continue
			}
			r.requestCommit()
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, contract.SignalRelease)
		for {
			if err := workflow.Await(ctx, func() bool { return r.state.Hold != contract.HoldReserving }); err != nil {
				return
			}
			var req contract.ReleaseRequest
			if !ch.Receive(ctx, &req) {
				return
			}
			if err := r.validateRelease(ctx, req); err != nil {
				logger.Warn("Release signal ignored", "Error", err)
				continue
			}
			r.requestRelease(req.Reason)
		}
	})
	return nil
}

// validateCommit accepts a commit of held stock, and a repeated commit
// (which returns the same outcome); it rejects everything else.
func (r *reservation) validateCommit(workflow.Context) error {
	switch r.state.Hold {
	case contract.HoldHeld, contract.HoldCommitting, contract.HoldCommitted:
		return nil
	default:
		return fmt.Errorf("cannot commit reservation %s: it is %s", r.in.ReservationID, r.state.Hold)
	}
}

// validateRelease accepts a release of held stock with reason "released"
// or "compensated", and a repeated release; it rejects a release after a
// commit and anything before the stock is held.
func (r *reservation) validateRelease(_ workflow.Context, req contract.ReleaseRequest) error {
	switch req.Reason {
	case "", events.ReleaseReasonReleased, events.ReleaseReasonCompensated:
	default:
		return fmt.Errorf("release reason %q is not %q or %q", req.Reason, events.ReleaseReasonReleased, events.ReleaseReasonCompensated)
	}
	switch r.state.Hold {
	case contract.HoldHeld, contract.HoldReleasing, contract.HoldReleased:
		return nil
	default:
		return fmt.Errorf("cannot release reservation %s: it is %s", r.in.ReservationID, r.state.Hold)
	}
}

func (r *reservation) requestCommit() {
	if r.state.Hold == contract.HoldHeld {
		r.state.Hold = contract.HoldCommitting
	}
}

func (r *reservation) requestRelease(reason string) {
	if r.state.Hold != contract.HoldHeld {
		return
	}
	if reason == "" {
		reason = events.ReleaseReasonReleased
	}
	r.state.Hold = contract.HoldReleasing
	r.state.ReleaseReason = reason
}

func (r *reservation) updateCommit(ctx workflow.Context) (contract.ReservationResult, error) {
	r.requestCommit()
	return r.awaitOutcome(ctx)
}

func (r *reservation) updateRelease(ctx workflow.Context, req contract.ReleaseRequest) (contract.ReservationResult, error) {
	r.requestRelease(req.Reason)
	return r.awaitOutcome(ctx)
}

func (r *reservation) awaitOutcome(ctx workflow.Context) (contract.ReservationResult, error) {
	if err := workflow.Await(ctx, func() bool { return r.done }); err != nil {
		return contract.ReservationResult{}, err
	}
	return r.result, r.err
}

func (r *reservation) run(ctx workflow.Context) (contract.ReservationResult, error) {
	err := r.saga.Step(ctx, contract.StepReserveInventory, r.reserve, r.compensateReserve)
	if err != nil {
		return r.fail(ctx, err)
	}
	r.state.Hold = contract.HoldHeld
	r.state.ExpiresAt = workflow.Now(ctx).Add(r.in.TTL)
	r.notifyParent(ctx)

	claimed, err := workflow.AwaitWithTimeout(ctx, r.in.TTL, func() bool { return r.state.Hold != contract.HoldHeld })
	if err != nil {
		// Cancelled while held: give the stock back.
		return r.fail(ctx, err)
	}
	if !claimed {
		r.state.Hold = contract.HoldReleasing
		r.state.ReleaseReason = events.ReleaseReasonExpired
	}

	result := contract.ReservationResult{ReservationID: r.in.ReservationID}
	if r.state.Hold == contract.HoldCommitting {
		if err := r.saga.Step(ctx, contract.StepCommitInventory, r.commit, nil); err != nil {
			return r.fail(ctx, err)
		}
		r.state.Hold = contract.HoldCommitted
		result.Outcome = contract.ReservationCommitted
	} else {
		if err := r.saga.Step(ctx, contract.StepReleaseInventory, r.release, nil); err != nil {
			return r.fail(ctx, err)
		}
		r.state.Hold = contract.HoldReleased
		result.Outcome = contract.ReservationReleased
		if r.state.ReleaseReason == events.ReleaseReasonExpired {
			result.Outcome = contract.ReservationExpired
		}
		result.ReleaseReason = r.state.ReleaseReason
	}
	return result, r.saga.Complete(ctx)
}

// fail compensates after err and returns the workflow's error: a refusal
// becomes contract.ErrTypeReservationFailed (after inventory.reservation_failed is
// published), a cancellation stays a cancellation.
func (r *reservation) fail(ctx workflow.Context, err error) (contract.ReservationResult, error) {
	reason, failedLines, refused := ReservationRefusal(err)
	refused = refused && !r.reserved
	if !refused && (r.state.ReleaseReason == "" || r.state.Hold == contract.HoldCommitting) {
		r.state.ReleaseReason = events.ReleaseReasonCompensated
	}
	cancelled := temporal.IsCanceledError(err)
	if compErr := r.saga.Compensate(ctx, err); compErr != nil {
		r.state.Hold = contract.HoldFailed
		return contract.ReservationResult{}, compErr
	}
	if r.reserved {
		r.state.Hold = contract.HoldReleased
	} else {
		r.state.Hold = contract.HoldFailed
	}
	if refused {
		dctx, cancel := workflow.NewDisconnectedContext(ctx)
		defer cancel()
		if perr := r.publishRefusal(dctx, reason, failedLines); perr != nil {
			return contract.ReservationResult{}, errors.Join(err, perr)
		}
		return contract.ReservationResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("reservation %s refused: %s", r.in.ReservationID, reason),
			contract.ErrTypeReservationFailed, err, reason, failedLines)
	}
	if cancelled {
		return contract.ReservationResult{}, temporal.NewCanceledError(r.state.ReleaseReason)
	}
	// A clean application error with the reason as its detail: the parent
	// sees the reason without digging through the wrapped step error.
	return contract.ReservationResult{}, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("reservation %s aborted: %v", r.in.ReservationID, err),
		contract.ErrTypeReservationAborted, err, failureReason(err))
}

// ReservationRefusal returns the reason and the failed lines of an error
// that is the inventory service's refusal of a reservation, whether it is
// the reserve activity's rejection or the contract.ErrTypeReservationFailed failure
// of a ReserveInventoryWorkflow child.
func ReservationRefusal(err error) (reason string, failed []events.StockLine, ok bool) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeReservationFailed {
		var lines []events.StockLine
		if appErr.Details(&reason, &lines) == nil && reason != "" {
			return reason, lines, true
		}
	}
	return activities.ReservationRejection(err)
}

func (r *reservation) notifyParent(ctx workflow.Context) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	err := workflow.SignalExternalWorkflow(ctx, parent.ID, parent.RunID, contract.SignalReservationHeld,
		contract.ReservationHeld{ReservationID: r.in.ReservationID}).Get(ctx, nil)
	if err != nil {
		// The parent closed; the parent-close policy cancels this workflow,
		// which releases the stock.
		workflow.GetLogger(ctx).Warn("Could not tell the parent the stock is held", "Parent", parent.ID, "Error", err)
	}
}

func (r *reservation) command(step string) activities.InventoryCommand {
	cmd := activities.InventoryCommand{Step: step, ReservationID: r.in.ReservationID}
	switch step {
	case contract.StepReserveInventory:
		cmd.OrderID = r.in.OrderID
		cmd.Lines = r.in.Lines
	case contract.StepReleaseInventory:
		cmd.Reason = r.state.ReleaseReason
	}
	return cmd
}

func (r *reservation) inventory(ctx workflow.Context, retry *temporal.RetryPolicy, activity any, step string) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: CommandTimeout,
		RetryPolicy:         retry,
	})
	return workflow.ExecuteActivity(ctx, activity, r.command(step)).Get(ctx, nil)
}

// forward runs a forward step, retrying it until the reservation's deadline.
func (r *reservation) forward(ctx workflow.Context, retry *temporal.RetryPolicy, activity any, step string) error {
	actx := deadlineOptions(ctx, r.deadline, step, retry)
	return givenUp(workflow.ExecuteActivity(actx, activity, r.command(step)).Get(ctx, nil), step, r.deadline)
}

func (r *reservation) reserve(ctx workflow.Context) error {
	if err := r.forward(ctx, reserveRetry(), r.a.ReserveInventory, contract.StepReserveInventory); err != nil {
		return err
	}
	r.reserved = true
	return nil
}

func (r *reservation) commit(ctx workflow.Context) error {
	return r.forward(ctx, commitRetry(), r.a.CommitInventory, contract.StepCommitInventory)
}

func (r *reservation) release(ctx workflow.Context) error {
	return r.inventory(ctx, releaseRetry(), r.a.ReleaseInventory, contract.StepReleaseInventory)
}

// compensateReserve gives held stock back. When the reserve's outcome is
// unknown (it timed out or was cancelled), it first resends the reserve with
// the same command id: the service answers a known id with its stored reply
// and applies an unknown one now, so a late reserve cannot leave stock held.
// A release refused because nothing is held (already released, or
// committed) has nothing left to undo.
func (r *reservation) compensateReserve(ctx workflow.Context) error {
	if !r.reserved {
		err := r.inventory(ctx, releaseRetry(), r.a.ReserveInventory, contract.StepReserveInventory)
		if _, rejected := activities.RejectionReason(err); rejected {
			return nil
		}
		if err != nil {
			return err
		}
		r.reserved = true
	}
	err := r.release(ctx)
	if reason, rejected := activities.RejectionReason(err); rejected &&
		(reason == events.ReasonReservationNotHeld || reason == events.ReasonUnknownReservation) {
		return nil
	}
	return err
}

func (r *reservation) publishRefusal(ctx workflow.Context, reason string, lines []events.StockLine) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: CommandTimeout,
		RetryPolicy:         publishRetry(),
	})
	return workflow.ExecuteActivity(ctx, r.a.PublishReservationFailed, activities.ReservationFailedEvent{
		Step:          contract.StepPublishReservationKO,
		ReservationID: r.in.ReservationID,
		OrderID:       r.in.OrderID,
		Reason:        reason,
		FailedLines:   lines,
	}).Get(ctx, nil)
}
