package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// DefaultCancelReason is the order.cancelled reason of a customer's cancel
// that gave none.
const DefaultCancelReason = "cancelled by customer"

// OrderWorkflow runs the order-placed saga: reserve the stock, take the
// payment (child TransferWorkflow, customer to merchant), commit the
// reservation, publish order.confirmed. Since OwnHoldChange the order holds
// the stock with its own activities and a time-to-live timer; an order
// started before it runs a child ReserveInventoryWorkflow instead.
// When a step fails, or the customer cancels (contract.SignalCancel, as a signal or
// an update) before the commit, it undoes what was done in reverse order
// (refund the payment with a reverse transfer, release the stock) and
// publishes order.cancelled with the reason and the failed step.
//
// Once the commit has started the order can no longer be cancelled: the
// cancel update is rejected and a cancel signal is recorded and ignored.
// Invalid input fails it at once with contract.ErrTypeInvalidOrder.
func OrderWorkflow(ctx workflow.Context, order events.OrderPlaced) (contract.OrderResult, error) {
	if err := order.Validate(); err != nil {
		return contract.OrderResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("invalid order: %v", err), contract.ErrTypeInvalidOrder, err)
	}
	// The starter sets them too (contract.OrderStartOptions); upserting them here
	// covers an order started some other way.
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		contract.OrderIDKey.ValueSet(order.OrderID), contract.CustomerIDKey.ValueSet(order.CustomerID)); err != nil {
		return contract.OrderResult{}, fmt.Errorf("upsert order search attributes: %w", err)
	}
	// Decided once, at the start: an order runs to its end on the code path
	// it started on. Recorded after the upsert, so an order recorded before
	// the change replays its first command unchanged.
	version := workflow.GetVersion(ctx, OwnHoldChange, workflow.DefaultVersion, localOrderSteps)
	saga, err := NewSaga(ctx, SagaOptions{})
	if err != nil {
		return contract.OrderResult{}, err
	}
	o := &orderSaga{order: order, saga: saga, state: contract.OrderState{OrderID: order.OrderID, Stage: contract.StageReserving},
		ownHold: version >= ownHold, localSteps: version >= localOrderSteps, deadline: sagaDeadline(ctx, order.Deadline, contract.DefaultOrderDeadline)}
	// A customer's cancel cancels stepCtx, interrupting the running step;
	// a cancellation of the workflow itself cancels both.
	stepCtx, cancelSteps := workflow.WithCancel(ctx)
	defer cancelSteps()
	o.cancelSteps, o.root = cancelSteps, ctx
	if err := o.register(ctx); err != nil {
		return contract.OrderResult{}, err
	}

	res, err := o.run(ctx, stepCtx)
	o.result, o.err, o.done = res, err, true
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return res, err
}

// orderSaga is the state of one OrderWorkflow run.
type orderSaga struct {
	a           *activities.Activities // nil: only its methods name the activities
	order       events.OrderPlaced
	saga        *Saga
	state       contract.OrderState
	cancelSteps workflow.CancelFunc
	// root is the workflow's context, cancelled only when the workflow is;
	// the reservation child runs on it so that it outlives a customer's
	// cancel long enough to be released in reverse order.
	root workflow.Context

	// reservation is the child reservation saga, nil until started.
	reservation workflow.ChildWorkflowFuture
	// failedStep is the step running when the saga failed.
	failedStep string
	// refunds counts the refund transfers started, so an operator's retry
	// of a failed refund gets a fresh transfer id.
	refunds int
	// deadline is the order's payment window, given to its reservation and
	// its payment; a refund, which must happen whatever the time, keeps
	// the transfer's default.
	deadline time.Time

	// ownHold: the order started at version ownHold of OwnHoldChange and
	// holds the stock with its own activities (hold) instead of a child
	// reservation saga.
	ownHold bool
	hold    hold
	// localSteps: the order started at version localOrderSteps and runs
	// its commit as a local activity first.
	localSteps bool

	done   bool
	result contract.OrderResult
	err    error
}

func (o *orderSaga) register(ctx workflow.Context) error {
	// Replaces the saga's own status query with one that adds the stage.
	if err := workflow.SetQueryHandler(ctx, contract.QueryStatus, func() (contract.OrderState, error) {
		st := o.state
		st.SagaState = o.saga.State()
		st.IgnoredCancels = append([]contract.CancelRequest(nil), o.state.IgnoredCancels...)
		return st, nil
	}); err != nil {
		return fmt.Errorf("register %s query: %w", contract.QueryStatus, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.SignalCancel, o.updateCancel,
		workflow.UpdateHandlerOptions{Validator: o.validateCancel}); err != nil {
		return fmt.Errorf("register %s update: %w", contract.SignalCancel, err)
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, contract.SignalCancel)
		for {
			var req contract.CancelRequest
			if !ch.Receive(ctx, &req) {
				return
			}
			if err := o.validateCancel(ctx, req); err != nil {
				o.state.IgnoredCancels = append(o.state.IgnoredCancels, req)
				workflow.GetLogger(ctx).Info("Cancel signal ignored", "Reason", req.Reason, "Error", err)
				continue
			}
			o.requestCancel(req)
		}
	})
	return nil
}

// validateCancel rejects a cancel once the commit has started: the stock
// is being sold and the payment is taken.
func (o *orderSaga) validateCancel(_ workflow.Context, _ contract.CancelRequest) error {
	switch o.state.Stage {
	case contract.StageCommitting:
		return fmt.Errorf("order %s is being confirmed and can no longer be cancelled", o.order.OrderID)
	case contract.StageConfirmed:
		return fmt.Errorf("order %s is confirmed and can no longer be cancelled", o.order.OrderID)
	}
	return nil
}

// requestCancel interrupts the running step; a second cancel, or one that
// comes while a failure is being compensated, changes nothing.
func (o *orderSaga) requestCancel(req contract.CancelRequest) {
	if o.state.CancelReason != "" || o.state.Stage == contract.StageCancelling || o.state.Stage == contract.StageCancelled {
		return
	}
	o.state.CancelReason = req.Reason
	if o.state.CancelReason == "" {
		o.state.CancelReason = DefaultCancelReason
	}
	o.cancelSteps()
}

// updateCancel cancels the order and returns its final result once the
// compensations ran.
func (o *orderSaga) updateCancel(ctx workflow.Context, req contract.CancelRequest) (contract.OrderResult, error) {
	o.requestCancel(req)
	if err := workflow.Await(ctx, func() bool { return o.done }); err != nil {
		return contract.OrderResult{}, err
	}
	return o.result, o.err
}

func (o *orderSaga) step(ctx workflow.Context, name string, fn StepFunc, comp CompensationFunc) error {
	o.failedStep = name
	if err := o.saga.Step(ctx, name, fn, comp); err != nil {
		return err
	}
	o.failedStep = ""
	if o.ownHold {
		if err := o.settleCancels(ctx); err != nil {
			return err
		}
	}
	return nil
}

// settleCancels lets the cancel handlers run before the next step starts:
// a cancel that came in the same workflow task as a step's result is then
// honoured before the next step issues a command (a payment child started
// only to be cancelled at once), and returned as the cancellation of ctx.
// The handlers' goroutines were created before the one started here, so
// they run first; the wait adds no command to the history. Orders started
// before OwnHoldChange were recorded without it.
func (o *orderSaga) settleCancels(ctx workflow.Context) error {
	settled := false
	workflow.Go(ctx, func(workflow.Context) { settled = true })
	if err := workflow.Await(ctx, func() bool { return settled }); err != nil || ctx.Err() != nil {
		return temporal.NewCanceledError(o.state.CancelReason)
	}
	return nil
}

func (o *orderSaga) run(ctx, stepCtx workflow.Context) (contract.OrderResult, error) {
	reserve, release, commit := o.reserve, o.releaseReservation, o.commit
	if o.ownHold {
		reserve, release, commit = o.reserveStock, o.releaseStock, o.commitStock
	}
	err := o.step(stepCtx, contract.StepOrderReserve, reserve, release)
	if err == nil {
		o.state.Stage = contract.StagePaying
		err = o.step(stepCtx, contract.StepOrderPayment, o.pay, o.refund)
	}
	if err == nil && stepCtx.Err() != nil {
		// The cancel came in the same workflow task as the payment's result.
		err = temporal.NewCanceledError(o.state.CancelReason)
	}
	if err == nil {
		// The point of no return: from here cancels are refused, so the
		// commit runs on the workflow's own context.
		o.state.Stage = contract.StageCommitting
		err = o.step(ctx, contract.StepOrderCommit, commit, nil)
	}
	if err == nil {
		o.state.Stage = contract.StageConfirmed
		if err := o.publish(ctx, events.TypeOrderConfirmed, "", ""); err != nil {
			return contract.OrderResult{}, err
		}
		return contract.OrderResult{OrderID: o.order.OrderID, Outcome: contract.OrderConfirmed}, o.saga.Complete(ctx)
	}
	return o.cancel(ctx, stepCtx, err)
}

// cancel compensates after err and publishes order.cancelled.
func (o *orderSaga) cancel(ctx, stepCtx workflow.Context, err error) (contract.OrderResult, error) {
	o.state.Stage = contract.StageCancelling
	workflowCancelled := errors.Is(ctx.Err(), workflow.ErrCanceled)
	reason, failedStep := failureReason(err), o.failedStep
	switch {
	case o.state.CancelReason != "" && temporal.IsCanceledError(err):
		// The customer's cancel interrupted the step: it did not fail.
		reason, failedStep = o.state.CancelReason, ""
	case workflowCancelled:
		failedStep = ""
	}
	result := contract.OrderResult{OrderID: o.order.OrderID, Outcome: contract.OrderCancelled, Reason: reason, FailedStep: failedStep, Error: err.Error()}

	compErr := o.saga.Compensate(stepCtx, err)
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	var ce *CompensationError
	if errors.As(compErr, &ce) {
		result.Outcome = contract.OrderResolved
		result.Error = ce.Error()
	} else if compErr != nil {
		return result, compErr
	}
	o.state.Stage = contract.StageCancelled
	if err := o.publish(dctx, events.TypeOrderCancelled, reason, failedStep); err != nil {
		return result, err
	}
	if workflowCancelled && ce == nil {
		return result, temporal.NewCanceledError(reason)
	}
	return result, nil
}

func childOptions(ctx workflow.Context, id string) workflow.Context {
	return workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// A cancelled child finishes its own compensation before the parent
		// goes on, so the parent knows what is left to undo.
		WaitForCancellation: true,
		// A parent that closes without finishing its children (terminated)
		// has them cancelled: they undo their own work.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
	})
}

// reserve starts the reservation child and waits until it holds the stock
// (it signals contract.SignalReservationHeld) or ends without holding it. The child
// runs on the workflow's own context, not stepCtx: a customer's cancel is
// undone by the release compensation, in reverse order, rather than by
// cancelling the child mid-reserve.
func (o *orderSaga) reserve(stepCtx workflow.Context) error {
	lines := make([]events.StockLine, len(o.order.Lines))
	for i, l := range o.order.Lines {
		lines[i] = events.StockLine{SKU: l.SKU, Quantity: l.Quantity}
	}
	// The stock is held past the order's deadline, so that the order, not
	// the time-to-live, decides what becomes of it.
	ttl := max(o.deadline.Sub(workflow.Now(stepCtx)), 0) + contract.DefaultReservationTTL
	in := contract.ReservationInput{ReservationID: o.order.OrderID, OrderID: o.order.OrderID, Lines: lines, TTL: ttl, Deadline: o.deadline}
	o.reservation = workflow.ExecuteChildWorkflow(childOptions(o.root, contract.ReservationWorkflowID(in.ReservationID)), ReserveInventoryWorkflow, in)

	held := false
	var childErr error
	sel := workflow.NewSelector(stepCtx)
	sel.AddReceive(workflow.GetSignalChannel(stepCtx, contract.SignalReservationHeld), func(c workflow.ReceiveChannel, _ bool) {
		var h contract.ReservationHeld
		c.Receive(stepCtx, &h)
		held = true
	})
	sel.AddFuture(o.reservation, func(f workflow.Future) {
		var res contract.ReservationResult
		if childErr = f.Get(stepCtx, &res); childErr == nil {
			childErr = notCommitted(res)
		}
	})
	sel.AddReceive(stepCtx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(stepCtx)
	switch {
	case held:
		return nil
	case childErr != nil:
		return childErr
	default:
		return temporal.NewCanceledError(o.state.CancelReason)
	}
}

func notCommitted(res contract.ReservationResult) error {
	reason := string(res.Outcome)
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("reservation %s ended %s before the order committed it", res.ReservationID, res.Outcome),
		contract.ErrTypeReservationNotCommitted, nil, reason)
}

// releaseReservation is the compensation of the reserve step: it asks a
// running reservation to release the stock (reason "compensated") and waits
// for it to end. A reservation that already ended (refused, expired,
// cancelled with the workflow) released what it held on its own.
func (o *orderSaga) releaseReservation(ctx workflow.Context) error {
	if o.reservation == nil {
		return nil
	}
	if !o.reservation.IsReady() {
		// An error means the child just ended; its result below says how.
		_ = o.reservation.SignalChildWorkflow(ctx, contract.SignalRelease, contract.ReleaseRequest{Reason: events.ReleaseReasonCompensated}).Get(ctx, nil)
	}
	var res contract.ReservationResult
	if err := o.reservation.Get(ctx, &res); err != nil {
		return nil
	}
	if res.Outcome == contract.ReservationCommitted {
		return fmt.Errorf("reservation %s is committed and cannot be released", res.ReservationID)
	}
	return nil
}

// pay runs the payment transfer. A transfer that ends without moving the
// money (refused, or compensated by itself) is a non-retryable
// contract.ErrTypePaymentFailed with the transfer's reason as detail.
func (o *orderSaga) pay(ctx workflow.Context) error {
	in := contract.TransferInput{
		TransferID:      contract.OrderTransferID(o.order.OrderID),
		SourceAccountID: o.order.CustomerID,
		TargetAccountID: o.order.MerchantID,
		Amount:          o.order.Total,
		Currency:        o.order.Currency,
		Deadline:        o.deadline,
	}
	var res contract.TransferResult
	if err := workflow.ExecuteChildWorkflow(childOptions(ctx, contract.TransferWorkflowID(in.TransferID)), TransferWorkflow, in).Get(ctx, &res); err != nil {
		return err
	}
	if res.Outcome != contract.TransferCompleted {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("payment %s %s: %s", in.TransferID, res.Outcome, res.Reason),
			contract.ErrTypePaymentFailed, nil, res.Reason)
	}
	o.state.Paid = true
	return nil
}

// refund is the compensation of the payment: a reverse transfer from the
// merchant to the customer. It conserves money (what the merchant received
// goes back, unlike a ledger refund that would credit the customer while the
// merchant kept the deposit) and is idempotent (its transfer id derives from
// the order id, and the ledger deduplicates its command ids). A payment
// that did not complete undid itself inside the transfer saga.
func (o *orderSaga) refund(ctx workflow.Context) error {
	if !o.state.Paid {
		return nil
	}
	o.refunds++
	in := contract.TransferInput{
		TransferID:      contract.OrderRefundTransferID(o.order.OrderID, o.refunds),
		SourceAccountID: o.order.MerchantID,
		TargetAccountID: o.order.CustomerID,
		Amount:          o.order.Total,
		Currency:        o.order.Currency,
	}
	var res contract.TransferResult
	if err := workflow.ExecuteChildWorkflow(childOptions(ctx, contract.TransferWorkflowID(in.TransferID)), TransferWorkflow, in).Get(ctx, &res); err != nil {
		return fmt.Errorf("refund transfer %s: %w", in.TransferID, err)
	}
	if res.Outcome != contract.TransferCompleted {
		return fmt.Errorf("refund transfer %s %s: %s", in.TransferID, res.Outcome, res.Reason)
	}
	o.state.Paid = false
	return nil
}

// commit asks the reservation to commit and waits for its result.
func (o *orderSaga) commit(ctx workflow.Context) error {
	if !o.reservation.IsReady() {
		// An error means the child just ended; its result below says how.
		_ = o.reservation.SignalChildWorkflow(ctx, contract.SignalCommit, nil).Get(ctx, nil)
	}
	var res contract.ReservationResult
	if err := o.reservation.Get(ctx, &res); err != nil {
		return err
	}
	if res.Outcome != contract.ReservationCommitted {
		return notCommitted(res)
	}
	return nil
}

// publish publishes the order's outcome event: with a regular activity for
// an order started before OwnHoldChange, as it was recorded, and with a
// local activity (publishLocally) since.
func (o *orderSaga) publish(ctx workflow.Context, typ, reason, failedStep string) error {
	ev := activities.OrderEvent{
		Step:       contract.StepOrderPublishOutcome,
		Type:       typ,
		OrderID:    o.order.OrderID,
		Reason:     reason,
		FailedStep: failedStep,
		Details:    o.order.Details(),
	}
	if !o.ownHold {
		return publishActivity(ctx, o.a.PublishOrderEvent, ev)
	}
	return publishLocally(ctx, contract.StepOrderPublishOutcome, o.a.PublishOrderEvent, ev)
}
