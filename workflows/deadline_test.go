package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// failingUntil is a ledger or inventory activity that fails as an outage
// does (no reply, the broker unreachable) for its first n attempts, then
// succeeds.
func failingUntil(n int32) func(context.Context, any) (activities.CommandResult, error) {
	return func(ctx context.Context, _ any) (activities.CommandResult, error) {
		if activity.GetInfo(ctx).Attempt <= n {
			return activities.CommandResult{}, errBrokerDown
		}
		return activities.CommandResult{}, nil
	}
}

// downUntil is an activity whose service is unreachable until the
// environment's clock reaches t, then answers.
func downUntil(h interface{ Now() time.Time }, t time.Time) func(context.Context, any) (activities.CommandResult, error) {
	return func(context.Context, any) (activities.CommandResult, error) {
		if h.Now().Before(t) {
			return activities.CommandResult{}, errBrokerDown
		}
		return activities.CommandResult{}, nil
	}
}

// ledgerFn and inventoryFn give failingUntil and downUntil the activities'
// own signatures.
func ledgerFn(f func(context.Context, any) (activities.CommandResult, error)) func(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
	return func(ctx context.Context, c activities.LedgerCommand) (activities.CommandResult, error) {
		return f(ctx, c)
	}
}

func inventoryFn(f func(context.Context, any) (activities.CommandResult, error)) func(context.Context, activities.InventoryCommand) (activities.CommandResult, error) {
	return func(ctx context.Context, c activities.InventoryCommand) (activities.CommandResult, error) {
		return f(ctx, c)
	}
}

// An outage far longer than the five attempts a step once had: every
// forward step keeps retrying with the same command until the services
// answer again, and the transfer completes without compensating.
func TestTransferRetriesThroughAnOutageUntilItEnds(t *testing.T) {
	h := newHarness(t)
	h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ledgerFn(failingUntil(30)))
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ledgerFn(failingUntil(25)))
	var timeouts []time.Duration
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		if info.Attempt == 1 && info.ActivityType.Name != "PublishTransferEvent" {
			timeouts = append(timeouts, info.ScheduleToCloseTimeout)
		}
	})
	start := h.env.Now()
	h.env.ExecuteWorkflow(TransferWorkflow, validTransfer)

	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var got contract.TransferResult
	require.NoError(t, h.env.GetWorkflowResult(&got))
	require.Equal(t, contract.TransferCompleted, got.Outcome)
	require.Equal(t, []contract.SagaStatus{contract.StatusRunning, contract.StatusCompleted}, h.statuses, "never compensated")
	require.Greater(t, h.env.Now().Sub(start), 30*time.Minute, "the outage outlasted the old attempts by far")
	require.Len(t, timeouts, 2)
	deadline := start.Add(contract.DefaultTransferDeadline)
	for _, d := range timeouts {
		require.InDelta(t, float64(contract.DefaultTransferDeadline), float64(d), float64(time.Hour),
			"each step retries until the transfer's default deadline %s", deadline)
	}
}

// The outage lasts past the transfer's deadline: the deposit gives up at
// the deadline, the compensation learns whether it took effect (the
// ledger answers again by then) and undoes it, and the transfer fails in
// business terms: deadline_passed.
func TestTransferCompensatesWhenItsDeadlinePasses(t *testing.T) {
	h := newHarness(t)
	in := validTransfer
	start := h.env.Now()
	in.Deadline = start.Add(10 * time.Minute)
	back := in.Deadline.Add(time.Minute) // the ledger answers again a minute after the deadline
	h.env.OnActivity(a.Withdraw, mock.Anything, step(contract.StepWithdraw)).Return(activities.CommandResult{}, nil).Once()
	deposits := 0
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(func(ctx context.Context, c activities.LedgerCommand) (activities.CommandResult, error) {
		deposits++
		return downUntil(h.env, back)(ctx, c)
	})
	h.env.OnActivity(a.Withdraw, mock.Anything, step(contract.StepReverseDeposit)).Return(activities.CommandResult{}, nil).Once()
	h.env.OnActivity(a.Refund, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil).Once()
	h.env.ExecuteWorkflow(TransferWorkflow, in)

	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var got contract.TransferResult
	require.NoError(t, h.env.GetWorkflowResult(&got))
	require.Equal(t, contract.TransferCompensated, got.Outcome)
	require.Equal(t, contract.ReasonDeadlinePassed, got.Reason)
	require.Contains(t, got.Error, "deposit retried until the deadline "+in.Deadline.UTC().Format(time.RFC3339)+" passed, still failing")
	require.Equal(t, []string{events.TypeTransferFailed, contract.ReasonDeadlinePassed}, []string{h.published[0].Type, h.published[0].Reason})
	require.Greater(t, deposits, 8, "the deposit retried more often than it once could")
	require.Equal(t, "Withdraw:reverse-deposit:acc-dst", h.calls[len(h.calls)-3], "the deposit that went through late is taken back")
	require.Equal(t, "Refund:refund:acc-src", h.calls[len(h.calls)-2])
	require.Equal(t, []contract.SagaStatus{contract.StatusRunning, contract.StatusCompensating, contract.StatusCompensated}, h.statuses)
	require.False(t, h.env.Now().Before(in.Deadline), "not before the deadline")
	h.env.AssertExpectations(t)
}

// A business rejection is the service's answer: it compensates at once,
// however far the deadline is, even after transient failures.
func TestTransferRejectionCompensatesAtOnce(t *testing.T) {
	h := newHarness(t)
	start := h.env.Now()
	h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil).Once()
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(activities.CommandResult{}, errBrokerDown).Times(3)
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(activities.CommandResult{}, rejection(events.CmdLedgerDeposit, events.ReasonAccountClosed)).Once()
	h.env.OnActivity(a.Refund, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil).Once()
	h.env.ExecuteWorkflow(TransferWorkflow, validTransfer)

	require.NoError(t, h.env.GetWorkflowError())
	var got contract.TransferResult
	require.NoError(t, h.env.GetWorkflowResult(&got))
	require.Equal(t, contract.TransferCompensated, got.Outcome)
	require.Equal(t, events.ReasonAccountClosed, got.Reason)
	require.Equal(t, concat([]string{"Withdraw:withdraw:acc-src"}, repeat("Deposit:deposit:acc-dst", 4), []string{"Refund:refund:acc-src", "Publish:transfer.failed"}), h.calls)
	require.Less(t, h.env.Now().Sub(start), time.Minute, "no waiting for the deadline")
	h.env.AssertExpectations(t)
}

// An order rides out an outage of both services: its reservation, its
// payment and its commit retry until they answer, and it is confirmed.
func TestOrderRidesOutAnOutage(t *testing.T) {
	h := newSagaEnv(t)
	h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(inventoryFn(failingUntil(12)))
	h.env.OnActivity(inv.Withdraw, mock.Anything, ledgerStep(contract.StepWithdraw)).Return(ledgerFn(failingUntil(20)))
	h.env.OnActivity(inv.Deposit, mock.Anything, ledgerStep(contract.StepDeposit)).Return(ledgerFn(failingUntil(15)))
	h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).Return(inventoryFn(failingUntil(15)))
	h.env.OnActivity(inv.PublishTransferEvent, mock.Anything, mock.Anything).Return(nil).Maybe()
	h.env.OnActivity(inv.PublishOrderEvent, mock.Anything, mock.Anything).Return(nil).Once()
	h.env.ExecuteWorkflow(OrderWorkflow, testOrder)

	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res contract.OrderResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, contract.OrderConfirmed, res.Outcome)
	require.Equal(t, "Publish:order.confirmed::", h.calls[len(h.calls)-1])
	require.NotContains(t, h.calls, oRelease)
}

// The order's payment window closes while the ledger is down: the payment
// gives up at the order's deadline, which the order gave its transfer, and
// the order is cancelled with reason deadline_passed, its stock released.
func TestOrderCancelledWhenItsPaymentWindowCloses(t *testing.T) {
	h := newSagaEnv(t)
	order := testOrder
	order.Deadline = h.env.Now().Add(20 * time.Minute)
	var payment contract.TransferInput
	h.env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		if info.WorkflowType.Name == "TransferWorkflow" {
			require.NoError(t, args.Get(&payment))
		}
	})
	// The hold's time-to-live is the order's only timer.
	var ttl time.Duration
	h.env.SetOnTimerScheduledListener(func(_ string, d time.Duration) {
		if ttl == 0 {
			ttl = d
		}
	})
	h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil).Once()
	h.env.OnActivity(inv.Withdraw, mock.Anything, ledgerStep(contract.StepWithdraw)).Return(ledgerFn(downUntil(h.env, order.Deadline.Add(time.Minute))))
	h.env.OnActivity(inv.Refund, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil).Once()
	h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil).Once()
	h.env.OnActivity(inv.PublishTransferEvent, mock.Anything, mock.Anything).Return(nil).Maybe()
	h.env.OnActivity(inv.PublishOrderEvent, mock.Anything, mock.Anything).Return(nil).Once()
	h.env.ExecuteWorkflow(OrderWorkflow, order)

	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res contract.OrderResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, contract.OrderCancelled, res.Outcome)
	require.Equal(t, contract.ReasonDeadlinePassed, res.Reason)
	require.Equal(t, contract.StepOrderPayment, res.FailedStep)
	require.True(t, payment.Deadline.Equal(order.Deadline), "the payment got the order's deadline")
	require.Greater(t, ttl, 20*time.Minute, "the stock is held past the deadline")
	require.Contains(t, h.calls, oRelease)
	require.Equal(t, "Publish:order.cancelled:deadline_passed:payment", h.calls[len(h.calls)-1])
	h.env.AssertExpectations(t)
}
