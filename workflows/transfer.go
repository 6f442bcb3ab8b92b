package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

func ledgerOptions(ctx workflow.Context, retry *temporal.RetryPolicy) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: CommandTimeout,
		RetryPolicy:         retry,
	})
}

// LocalOutcomePublishChange is the workflow.GetVersion change id under which
// TransferWorkflow publishes its outcome event with a local activity
// (version 1) instead of a regular one (workflow.DefaultVersion, the
// transfers recorded before the change): the publish then runs inside the
// workflow task that decided it, and a completed transfer costs 3 workflow
// tasks and 2 activity tasks instead of 4 and 3. Histories hold the id:
// never rename it or reuse it for another change.
const LocalOutcomePublishChange = "transfer-local-outcome-publish"

// The versions of LocalOutcomePublishChange: localOutcomePublish publishes
// the outcome with a local activity; localTransferSteps also runs the
// withdraw and the deposit as local activities first (commandLocally), so
// that a completed transfer costs 1 workflow task and no activity task.
const (
	localOutcomePublish workflow.Version = 1
	localTransferSteps  workflow.Version = 2
)

// TransferWorkflow moves an amount from one account to another: withdraw
// from the source, deposit to the target; if the deposit fails for good, the
// source is refunded. It ends by publishing transfer.completed or
// transfer.failed. Invalid input fails it at once with contract.ErrTypeInvalidTransfer.
func TransferWorkflow(ctx workflow.Context, in contract.TransferInput) (contract.TransferResult, error) {
	if err := in.Validate(); err != nil {
		return contract.TransferResult{}, invalidInput(err)
	}
	// Decided once, at the start: a transfer runs to its end on the code
	// path it started on.
	version := workflow.GetVersion(ctx, LocalOutcomePublishChange, workflow.DefaultVersion, localTransferSteps)
	saga, err := NewSaga(ctx, SagaOptions{})
	if err != nil {
		return contract.TransferResult{}, err
	}
	t := &transfer{in: in, localPublish: version >= localOutcomePublish, localSteps: version >= localTransferSteps,
		deadline: sagaDeadline(ctx, in.Deadline, contract.DefaultTransferDeadline)}

	err = saga.Step(ctx, contract.StepWithdraw, func(ctx workflow.Context) error {
		if err := t.forward(ctx, withdrawRetry(), t.a.Withdraw, contract.StepWithdraw, in.SourceAccountID); err != nil {
			return err
		}
		t.withdrawn = true
		return nil
	}, t.refundSource)
	if err == nil {
		err = saga.Step(ctx, contract.StepDeposit, func(ctx workflow.Context) error {
			return t.forward(ctx, depositRetry(), t.a.Deposit, contract.StepDeposit, in.TargetAccountID)
		}, t.reverseDeposit)
	}
	if err == nil {
		if err := t.publish(ctx, events.TypeTransferCompleted, ""); err != nil {
			return contract.TransferResult{}, err
		}
		return contract.TransferResult{TransferID: in.TransferID, Outcome: contract.TransferCompleted}, saga.Complete(ctx)
	}

	cancelled := temporal.IsCanceledError(err)
	reason := failureReason(err)
	compErr := saga.Compensate(ctx, err)
	// The saga may have been cancelled: finish on a disconnected context so
	// the outcome is still published.
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()

	result := contract.TransferResult{TransferID: in.TransferID, Outcome: contract.TransferFailed, Reason: reason, Error: err.Error()}
	if t.refunded {
		result.Outcome = contract.TransferCompensated
	}
	var ce *CompensationError
	if errors.As(compErr, &ce) {
		result.Outcome = contract.TransferResolved
		result.Error = ce.Error()
		result.ResolvedBy = &ce.Resolution
		reason = "resolved_by_operator"
	} else if compErr != nil {
		return result, compErr
	}
	if err := t.publish(dctx, events.TypeTransferFailed, reason); err != nil {
		return result, err
	}
	if cancelled && ce == nil {
		return result, temporal.NewCanceledError(reason)
	}
	return result, nil
}

// failureReason is the machine-readable reason of a failed step.
func failureReason(err error) string {
	if reason, ok := activities.RejectionReason(err); ok {
		return reason
	}
	var timeoutErr *temporal.TimeoutError
	switch {
	case temporal.IsCanceledError(err):
		return "cancelled"
	case DeadlinePassed(err):
		return contract.ReasonDeadlinePassed
	case errors.As(err, &timeoutErr):
		return "timeout"
	default:
		return "step_failed"
	}
}

// transfer is the state of one TransferWorkflow run.
type transfer struct {
	a         *activities.Activities // nil: only its methods name the activities
	in        contract.TransferInput
	withdrawn bool // the withdraw step succeeded
	refunded  bool // the refund compensation moved the money back
	// localPublish: the transfer started at version localOutcomePublish of
	// LocalOutcomePublishChange and publishes its outcome locally.
	localPublish bool
	// localSteps: the transfer started at version localTransferSteps and
	// runs its forward steps as local activities first.
	localSteps bool
	// deadline is when the forward steps stop retrying.
	deadline time.Time
}

func (t *transfer) command(step, account string) activities.LedgerCommand {
	return activities.LedgerCommand{
		Step:       step,
		AccountID:  account,
		Amount:     t.in.Amount,
		Currency:   t.in.Currency,
		TransferID: t.in.TransferID,
	}
}

func (t *transfer) ledger(ctx workflow.Context, retry *temporal.RetryPolicy, activity any, step, account string) error {
	return workflow.ExecuteActivity(ledgerOptions(ctx, retry), activity, t.command(step, account)).Get(ctx, nil)
}

// forward runs a forward step, retrying it until the transfer's deadline:
// as a regular activity for a transfer started before localTransferSteps,
// as it was recorded, and as a local activity first since.
func (t *transfer) forward(ctx workflow.Context, retry *temporal.RetryPolicy, activity any, step, account string) error {
	cmd := t.command(step, account)
	regular := func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(deadlineOptions(ctx, t.deadline, step, retry), activity, cmd)
	}
	f := regular
	if t.localSteps {
		f = func(ctx workflow.Context) workflow.Future {
			return commandLocally(ctx, t.deadline, step, retry, activity, cmd, regular)
		}
	}
	return givenUp(f(ctx).Get(ctx, nil), step, t.deadline)
}

// applied learns whether a step whose outcome is unknown (it timed out or
// was cancelled) took effect, by resending its command with the same id: the
// ledger answers a known id with its stored reply, and applies an unknown
// one now, which the caller then undoes.
func (t *transfer) applied(ctx workflow.Context, activity any, step, account string) (bool, error) {
	err := t.ledger(ctx, compensationRetry(), activity, step, account)
	if _, rejected := activities.RejectionReason(err); rejected {
		return false, nil
	}
	return err == nil, err
}

// refundSource is the compensation of the withdraw.
func (t *transfer) refundSource(ctx workflow.Context) error {
	if !t.withdrawn {
		ok, err := t.applied(ctx, t.a.Withdraw, contract.StepWithdraw, t.in.SourceAccountID)
		if err != nil || !ok {
			return err
		}
	}
	if err := t.ledger(ctx, compensationRetry(), t.a.Refund, contract.StepRefund, t.in.SourceAccountID); err != nil {
		return err
	}
	t.refunded = true
	return nil
}

// reverseDeposit is the compensation of the deposit: it runs only when the
// deposit's outcome is unknown, and takes the money back from the target if
// the deposit did go through.
func (t *transfer) reverseDeposit(ctx workflow.Context) error {
	ok, err := t.applied(ctx, t.a.Deposit, contract.StepDeposit, t.in.TargetAccountID)
	if err != nil || !ok {
		return err
	}
	return t.ledger(ctx, compensationRetry(), t.a.Withdraw, contract.StepReverseDeposit, t.in.TargetAccountID)
}

// publish publishes the transfer's outcome event. Transfers started before
// LocalOutcomePublishChange publish it with a regular activity, as they
// were recorded; newer ones with a local activity (publishLocally).
func (t *transfer) publish(ctx workflow.Context, typ, reason string) error {
	ev := activities.TransferEvent{
		Step:            contract.StepPublishOutcome,
		Type:            typ,
		TransferID:      t.in.TransferID,
		SourceAccountID: t.in.SourceAccountID,
		TargetAccountID: t.in.TargetAccountID,
		Amount:          t.in.Amount,
		Currency:        t.in.Currency,
		Reason:          reason,
	}
	if !t.localPublish {
		return publishActivity(ctx, t.a.PublishTransferEvent, ev)
	}
	return publishLocally(ctx, contract.StepPublishOutcome, t.a.PublishTransferEvent, ev)
}
