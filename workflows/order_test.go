package workflows

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

var testOrder = events.OrderPlaced{
	OrderID:    "o-1",
	CustomerID: "cust",
	MerchantID: "shop",
	Lines: []events.OrderLine{
		{SKU: "sku-a", Quantity: 2, UnitPrice: 1000},
		{SKU: "sku-b", Quantity: 1, UnitPrice: 500},
	},
	Currency: "EUR",
	Total:    2500,
}

func orderState(t *testing.T, env *testsuite.TestWorkflowEnvironment) contract.OrderState {
	v, err := env.QueryWorkflow(contract.QueryStatus)
	require.NoError(t, err)
	var st contract.OrderState
	require.NoError(t, v.Get(&st))
	return st
}

func ledgerStep(step string) any {
	return mock.MatchedBy(func(c activities.LedgerCommand) bool { return c.Step == step })
}

// The activities the order saga and its real children run, as sagaEnv
// records them.
const (
	oReserve   = "ReserveInventory:reserve"
	oCommit    = "CommitInventory:commit"
	oRelease   = "ReleaseInventory:release:compensated"
	oPay       = "Withdraw:withdraw:cust"
	oPayIn     = "Deposit:deposit:shop"
	oRefundOut = "Withdraw:withdraw:shop"
	oRefundIn  = "Deposit:deposit:cust"
	oTransfer  = "Publish:transfer.completed"
	oTransferF = "Publish:transfer.failed"
)

// TestOrderWorkflow runs the order saga with its real children and mocked
// activities, over every failure point and cancellation stage.
func TestOrderWorkflow(t *testing.T) {
	ok := activities.CommandResult{}
	reserveOK := func(h *sagaEnv) {
		h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
	}
	payOK := func(h *sagaEnv) {
		h.env.OnActivity(inv.Withdraw, mock.Anything, ledgerStep(contract.StepWithdraw)).Return(ok, nil).Once()
		h.env.OnActivity(inv.Deposit, mock.Anything, ledgerStep(contract.StepDeposit)).Return(ok, nil).Once()
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, h *sagaEnv)
		want  contract.OrderResult
		calls []string
		// compensations are the order saga's own, in registration order.
		compensations []contract.CompensationState
		status        contract.SagaStatus
		stage         contract.OrderStage
		// deadline, when set, is the order's payment window from its start.
		deadline time.Duration
	}{
		{
			name: "confirmed",
			setup: func(_ *testing.T, h *sagaEnv) {
				reserveOK(h)
				payOK(h)
				h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderConfirmed},
			calls: []string{oReserve, oPay, oPayIn, oTransfer, oCommit, "Publish:order.confirmed::"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationRegistered},
				{Name: contract.StepOrderPayment, Status: contract.CompensationRegistered},
			},
			status: contract.StatusCompleted,
			stage:  contract.StageConfirmed,
		},
		{
			name: "reservation refused: nothing to undo",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).
					Return(ok, rejectionWith(events.CmdInventoryReserve, events.ReasonInsufficientStock, `{"failed_lines":[{"sku":"sku-b","quantity":1}]}`)).Once()
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderCancelled, Reason: events.ReasonInsufficientStock, FailedStep: contract.StepOrderReserve},
			calls: []string{oReserve, "PublishReservationFailed:insufficient_stock", "Publish:order.cancelled:insufficient_stock:reserve-inventory"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationDropped},
			},
			status: contract.StatusCompensated,
			stage:  contract.StageCancelled,
		},
		{
			name: "payment refused: release the stock",
			setup: func(_ *testing.T, h *sagaEnv) {
				reserveOK(h)
				h.env.OnActivity(inv.Withdraw, mock.Anything, mock.Anything).
					Return(ok, rejectionWith(events.CmdLedgerWithdraw, events.ReasonInsufficientFunds, "")).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderCancelled, Reason: events.ReasonInsufficientFunds, FailedStep: contract.StepOrderPayment},
			calls: []string{oReserve, oPay, oTransferF, oRelease, "Publish:order.cancelled:insufficient_funds:payment"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationSucceeded, Runs: 1},
				{Name: contract.StepOrderPayment, Status: contract.CompensationDropped},
			},
			status: contract.StatusCompensated,
			stage:  contract.StageCancelled,
		},
		{
			// Undone in reverse order: the payment refunded with a reverse
			// transfer, then the stock released.
			name: "commit fails: refund, then release",
			setup: func(_ *testing.T, h *sagaEnv) {
				reserveOK(h)
				payOK(h)
				h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).
					Return(ok, rejectionWith(events.CmdInventoryCommit, events.ReasonReservationNotHeld, "")).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.Withdraw, mock.Anything, ledgerStep(contract.StepWithdraw)).Return(ok, nil).Once()
				h.env.OnActivity(inv.Deposit, mock.Anything, ledgerStep(contract.StepDeposit)).Return(ok, nil).Once()
			},
			want: contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderCancelled, Reason: events.ReasonReservationNotHeld, FailedStep: contract.StepOrderCommit},
			calls: []string{oReserve, oPay, oPayIn, oTransfer, oCommit,
				oRefundOut, oRefundIn, oTransfer, oRelease, "Publish:order.cancelled:reservation_not_held:commit-inventory"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationSucceeded, Runs: 1},
				{Name: contract.StepOrderPayment, Status: contract.CompensationSucceeded, Runs: 1},
			},
			status: contract.StatusCompensated,
			stage:  contract.StageCancelled,
		},
		{
			// The payment outlasts the hold's time-to-live: the stock goes
			// back when the timer fires, so the commit fails with the
			// reservation's outcome, the payment is refunded, and nothing
			// is released twice.
			// The hold runs to the deadline and its time-to-live past it:
			// a payment attempt that stalls beyond both loses the stock.
			name:     "hold expires during the payment",
			deadline: time.Minute,
			setup: func(_ *testing.T, h *sagaEnv) {
				reserveOK(h)
				h.env.OnActivity(inv.Withdraw, mock.Anything, ledgerStep(contract.StepWithdraw)).After(contract.DefaultReservationTTL+2*time.Minute).Return(ok, nil).Once()
				h.env.OnActivity(inv.Deposit, mock.Anything, ledgerStep(contract.StepDeposit)).Return(ok, nil).Twice()
				h.env.OnActivity(inv.Withdraw, mock.Anything, ledgerStep(contract.StepWithdraw)).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.MatchedBy(func(c activities.InventoryCommand) bool {
					return c.Reason == events.ReleaseReasonExpired
				})).Return(ok, nil).Once()
			},
			want: contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderCancelled, Reason: string(contract.ReservationExpired), FailedStep: contract.StepOrderCommit},
			calls: []string{oReserve, oPay, "ReleaseInventory:release:expired", oPayIn, oTransfer,
				oRefundOut, oRefundIn, oTransfer, "Publish:order.cancelled:expired:commit-inventory"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationSucceeded, Runs: 1},
				{Name: contract.StepOrderPayment, Status: contract.CompensationSucceeded, Runs: 1},
			},
			status: contract.StatusCompensated,
			stage:  contract.StageCancelled,
		},
		{
			name: "customer cancels while the stock is being reserved",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).After(5*time.Second).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(func() {
					h.env.SignalWorkflow(contract.SignalCancel, events.OrderCancelRequested{OrderID: "o-1", Reason: "changed my mind"})
				}, time.Second)
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderCancelled, Reason: "changed my mind"},
			calls: []string{oReserve, oRelease, "Publish:order.cancelled:changed my mind:"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationSucceeded, Runs: 1},
			},
			status: contract.StatusCancelled,
			stage:  contract.StageCancelled,
		},
		{
			// The cancel and the reserve's result come together: the cancel
			// is honoured before the payment starts, and the stock released.
			name: "customer cancels as the stock is reserved",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).After(time.Second).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(func() {
					h.env.SignalWorkflow(contract.SignalCancel, contract.CancelRequest{Reason: "changed my mind"})
				}, time.Second)
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderCancelled, Reason: "changed my mind"},
			calls: []string{oReserve, oRelease, "Publish:order.cancelled:changed my mind:"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationSucceeded, Runs: 1},
			},
			status: contract.StatusCancelled,
			stage:  contract.StageCancelled,
		},
		{
			// The transfer child is cancelled: it learns its withdraw did not
			// apply (the resent command is refused) and refunds nothing; the
			// order then releases the stock.
			name: "customer cancels by update during the payment",
			setup: func(t *testing.T, h *sagaEnv) {
				reserveOK(h)
				h.env.OnActivity(inv.Withdraw, mock.Anything, mock.Anything).After(5*time.Second).Return(ok, nil).Once()
				h.env.OnActivity(inv.Withdraw, mock.Anything, mock.Anything).
					Return(ok, rejectionWith(events.CmdLedgerWithdraw, events.ReasonInsufficientFunds, "")).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				var u updateOutcome
				h.update(contract.SignalCancel, time.Second, contract.CancelRequest{}, u.callback())
				t.Cleanup(func() {
					require.NoError(t, u.rejected)
					require.NoError(t, u.err)
					require.Equal(t, contract.OrderCancelled, u.result.(contract.OrderResult).Outcome)
				})
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderCancelled, Reason: DefaultCancelReason},
			calls: []string{oReserve, oPay, oPay, oTransferF, oRelease, "Publish:order.cancelled:" + DefaultCancelReason + ":"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationSucceeded, Runs: 1},
				{Name: contract.StepOrderPayment, Status: contract.CompensationSucceeded, Runs: 1},
			},
			status: contract.StatusCancelled,
			stage:  contract.StageCancelled,
		},
		{
			name: "cancel during the commit is rejected, a cancel signal ignored",
			setup: func(t *testing.T, h *sagaEnv) {
				reserveOK(h)
				payOK(h)
				h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).After(5*time.Second).Return(ok, nil).Once()
				var u updateOutcome
				h.update(contract.SignalCancel, time.Second, contract.CancelRequest{Reason: "too late"}, u.callback())
				h.env.RegisterDelayedCallback(func() {
					h.env.SignalWorkflow(contract.SignalCancel, contract.CancelRequest{Reason: "too late, signalled"})
				}, 2*time.Second)
				t.Cleanup(func() {
					require.ErrorContains(t, u.rejected, "order o-1 is being confirmed and can no longer be cancelled")
					require.Equal(t, []contract.CancelRequest{{Reason: "too late, signalled"}}, orderState(t, h.env).IgnoredCancels)
				})
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderConfirmed},
			calls: []string{oReserve, oPay, oPayIn, oTransfer, oCommit, "Publish:order.confirmed::"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationRegistered},
				{Name: contract.StepOrderPayment, Status: contract.CompensationRegistered},
			},
			status: contract.StatusCompleted,
			stage:  contract.StageConfirmed,
		},
		{
			name: "cancel after confirmation is rejected",
			setup: func(t *testing.T, h *sagaEnv) {
				reserveOK(h)
				payOK(h)
				h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.PublishOrderEvent, mock.Anything, mock.Anything).After(5 * time.Second).Return(nil).Once()
				var u updateOutcome
				h.update(contract.SignalCancel, time.Second, contract.CancelRequest{}, u.callback())
				t.Cleanup(func() {
					require.ErrorContains(t, u.rejected, "order o-1 is confirmed and can no longer be cancelled")
				})
			},
			want:  contract.OrderResult{OrderID: "o-1", Outcome: contract.OrderConfirmed},
			calls: []string{oReserve, oPay, oPayIn, oTransfer, oCommit, "Publish:order.confirmed::"},
			compensations: []contract.CompensationState{
				{Name: contract.StepOrderReserve, Status: contract.CompensationRegistered},
				{Name: contract.StepOrderPayment, Status: contract.CompensationRegistered},
			},
			status: contract.StatusCompleted,
			stage:  contract.StageConfirmed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newSagaEnv(t)
			tc.setup(t, h)
			h.publishesSucceed()
			order := testOrder
			if tc.deadline > 0 {
				order.Deadline = h.env.Now().Add(tc.deadline)
			}
			h.env.ExecuteWorkflow(OrderWorkflow, order)
			require.True(t, h.env.IsWorkflowCompleted())
			require.NoError(t, h.env.GetWorkflowError())
			var res contract.OrderResult
			require.NoError(t, h.env.GetWorkflowResult(&res))
			res.Error = ""
			require.Equal(t, tc.want, res)
			require.Equal(t, tc.calls, h.calls)
			st := orderState(t, h.env)
			require.Equal(t, tc.status, st.Status)
			require.Equal(t, tc.stage, st.Stage)
			require.Equal(t, tc.compensations, st.Compensations)
			h.env.AssertExpectations(t)
		})
	}
}

// TestOrderWorkflowCancelledByTemporal proves a cancellation of the
// workflow itself (not the customer's signal) also undoes everything and
// ends as a cancellation.
func TestOrderWorkflowCancelledByTemporal(t *testing.T) {
	ok := activities.CommandResult{}
	h := newSagaEnv(t)
	h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.env.OnActivity(inv.Withdraw, mock.Anything, mock.Anything).After(5*time.Second).Return(ok, nil).Once()
	h.env.OnActivity(inv.Withdraw, mock.Anything, mock.Anything).
		Return(ok, rejectionWith(events.CmdLedgerWithdraw, events.ReasonInsufficientFunds, "")).Once()
	h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.env.OnActivity(inv.PublishTransferEvent, mock.Anything, mock.Anything).Return(nil).Once()
	h.env.OnActivity(inv.PublishOrderEvent, mock.Anything, mock.Anything).Return(nil).Once()
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Second)
	h.env.ExecuteWorkflow(OrderWorkflow, testOrder)
	require.True(t, temporal.IsCanceledError(h.env.GetWorkflowError()), "got %v", h.env.GetWorkflowError())
	st := orderState(t, h.env)
	require.Equal(t, contract.StatusCancelled, st.Status)
	require.Equal(t, contract.StageCancelled, st.Stage)
	// Both children are cancelled at once and undo their own work, so only
	// the set of activities is fixed, and the outcome is published last.
	require.ElementsMatch(t, []string{oReserve, oPay, oPay, oTransferF, oRelease, "Publish:order.cancelled:cancelled:"}, h.calls)
	require.Equal(t, "Publish:order.cancelled:cancelled:", h.calls[len(h.calls)-1])
	h.env.AssertExpectations(t)
}

// TestOrderCompensatesAReserveOfUnknownOutcome: a reserve that timed out
// until the order's deadline may still have taken effect, so the release
// compensation resends it with the same command id before releasing.
func TestOrderCompensatesAReserveOfUnknownOutcome(t *testing.T) {
	ok := activities.CommandResult{}
	h := newSagaEnv(t)
	order := testOrder
	order.Deadline = h.env.Now().Add(2 * time.Minute)
	h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.InventoryCommand) (activities.CommandResult, error) {
			if h.env.Now().Before(order.Deadline) {
				return ok, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil)
			}
			return ok, nil
		})
	h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.publishesSucceed()
	h.env.ExecuteWorkflow(OrderWorkflow, order)
	require.True(t, h.env.IsWorkflowCompleted())
	var res contract.OrderResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, contract.OrderCancelled, res.Outcome)
	require.Equal(t, contract.ReasonDeadlinePassed, res.Reason)
	n := len(h.calls)
	require.Greater(t, n, 3, "reserved until the deadline, then resent: %v", h.calls)
	for _, c := range h.calls[:n-2] {
		require.Equal(t, oReserve, c)
	}
	require.Equal(t, []string{oRelease, "Publish:order.cancelled:deadline_passed:reserve-inventory"}, h.calls[n-2:])
	h.env.AssertExpectations(t)
}

func TestOrderWorkflowRejectsInvalidOrder(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(o *events.OrderPlaced)
		want   string
	}{
		{"total differs from the lines", func(o *events.OrderPlaced) { o.Total = 2400 }, "must equal the sum of the lines"},
		{"zero quantity", func(o *events.OrderPlaced) { o.Lines[0].Quantity = 0 }, "quantity"},
		{"negative price", func(o *events.OrderPlaced) { o.Lines[1].UnitPrice = -5 }, "unit_price"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order := testOrder
			order.Lines = append([]events.OrderLine(nil), testOrder.Lines...)
			tc.mutate(&order)
			h := newSagaEnv(t)
			h.env.ExecuteWorkflow(OrderWorkflow, order)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(h.env.GetWorkflowError(), &appErr))
			require.Equal(t, contract.ErrTypeInvalidOrder, appErr.Type())
			require.True(t, appErr.NonRetryable())
			require.ErrorContains(t, appErr, tc.want)
			require.Empty(t, h.calls)
		})
	}
}

// standIns stand in for the inventory service, the ledger and the broker
// with activities of the same names, for recording histories on a dev
// server: sku "out-of-stock" is refused, withdrawals over 10000 too, and a
// withdrawal of ledgerDownAmount fails as an outage does until
// ledgerBackAt.
type standIns struct{}

// ledgerDownAmount is the amount whose withdrawals get no answer until the
// time in ledgerBackAt (Unix nanoseconds).
const ledgerDownAmount = 4242

var ledgerBackAt atomic.Int64

func (standIns) ReserveInventory(_ context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	for _, l := range cmd.Lines {
		if l.SKU == "out-of-stock" {
			return activities.CommandResult{}, rejectionWith(events.CmdInventoryReserve, events.ReasonInsufficientStock, `{"failed_lines":[{"sku":"out-of-stock","quantity":1}]}`)
		}
	}
	return activities.CommandResult{CommandType: events.CmdInventoryReserve}, nil
}

func (standIns) CommitInventory(context.Context, activities.InventoryCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdInventoryCommit}, nil
}

func (standIns) ReleaseInventory(context.Context, activities.InventoryCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdInventoryRelease}, nil
}

func (standIns) Withdraw(_ context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	if cmd.Amount > 10000 {
		return activities.CommandResult{}, rejectionWith(events.CmdLedgerWithdraw, events.ReasonInsufficientFunds, "")
	}
	if cmd.Amount == ledgerDownAmount && time.Now().UnixNano() < ledgerBackAt.Load() {
		return activities.CommandResult{}, errBrokerDown
	}
	return activities.CommandResult{CommandType: events.CmdLedgerWithdraw}, nil
}

func (standIns) Deposit(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdLedgerDeposit}, nil
}

func (standIns) Refund(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
	return activities.CommandResult{CommandType: events.CmdLedgerRefund}, nil
}

func (standIns) PublishTransferEvent(context.Context, activities.TransferEvent) error { return nil }
func (standIns) PublishReservationFailed(context.Context, activities.ReservationFailedEvent) error {
	return nil
}
func (standIns) PublishOrderEvent(context.Context, activities.OrderEvent) error { return nil }

// recordHistories makes TestOrderLiveRunReplays store the histories it
// records in testdata/ (RECORD_HISTORIES=1 go test ./workflows -run TestOrderLiveRunReplays).
var recordHistories = os.Getenv("RECORD_HISTORIES") == "1"

// sagaHistories are the recorded order and reservation histories, one per
// way each saga ends (TestOrderLiveRunReplays,
// TestOrderLiveRunReplaysCancelsAndOperators and
// TestReservationLiveRunReplaysExpiryAndRefusal record them): the orders
// recorded since OwnHoldChange (orderOwnHoldHistories) and those recorded
// before it, with the reservation child of the confirmed one.
var sagaHistories = append(orderOwnHoldHistories(), []recordedHistory{
	{"order_confirmed.json", OrderWorkflow},
	{"order_payment_refused.json", OrderWorkflow},
	{"order_reservation_refused.json", OrderWorkflow},
	{"order_cancelled_before_payment.json", OrderWorkflow},
	{"order_cancelled_during_payment.json", OrderWorkflow},
	{"order_compensation_retried.json", OrderWorkflow},
	{"order_resolved.json", OrderWorkflow},
	{"order_deadline_passed_v1.json", OrderWorkflow},
	{"order_deadline_passed_v2.json", OrderWorkflow},
	{"reservation_committed_by_parent.json", ReserveInventoryWorkflow},
	{"reservation_released_by_update.json", ReserveInventoryWorkflow},
	{"reservation_expired.json", ReserveInventoryWorkflow},
	{"reservation_refused.json", ReserveInventoryWorkflow},
}...)

// orderEndings are the ways an order ends, each recorded before
// OwnHoldChange in ending+".json" and since in ending+"_v1.json".
var orderEndings = []string{
	"order_confirmed", "order_payment_refused", "order_reservation_refused",
	"order_cancelled_before_payment", "order_cancelled_during_payment",
	"order_compensation_retried", "order_resolved",
}

// recordedHistory is a history file in testdata/ and the workflow that
// replays it.
type recordedHistory struct {
	file     string
	workflow any
}

// orderOwnHoldHistories are the orders recorded since OwnHoldChange: at
// ownHold (_v1) and at localOrderSteps (_v2, the current code).
func orderOwnHoldHistories() []recordedHistory {
	var hs []recordedHistory
	for _, e := range orderEndings {
		hs = append(hs, recordedHistory{e + "_v1.json", OrderWorkflow}, recordedHistory{e + "_v2.json", OrderWorkflow})
	}
	return hs
}

// TestOrderAndReservationReplayRecordedHistories replays histories
// recorded on a real dev server: a change to OrderWorkflow or
// ReserveInventoryWorkflow that would break running sagas fails here.
func TestOrderAndReservationReplayRecordedHistories(t *testing.T) {
	for _, hc := range sagaHistories {
		t.Run(hc.file, func(t *testing.T) {
			path := filepath.Join("testdata", hc.file)
			_, err := os.Stat(path)
			require.NoError(t, err, "record it with: RECORD_HISTORIES=1 go test ./workflows -run 'LiveRunReplays'")
			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflow(hc.workflow)
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(nil, path))
		})
	}
}

// TestEveryRecordedHistoryIsReplayed keeps the lists of the replay tests
// complete: a history added to testdata/ is replayed by CI.
func TestEveryRecordedHistoryIsReplayed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	seen := map[string]bool{}
	var listed []string
	add := func(file string) {
		if p := filepath.Join("testdata", file); !seen[p] {
			seen[p] = true
			listed = append(listed, p)
		}
	}
	for _, hc := range sagaHistories {
		add(hc.file)
	}
	for _, rc := range replayCases {
		add(rc.file)
	}
	for _, tc := range transferTaskCases {
		add(tc.v0File)
		add(tc.v1File)
		add(tc.v2File)
	}
	require.ElementsMatch(t, files, listed)
}

func fetchHistory(ctx context.Context, t *testing.T, c client.Client, id, runID string) *historypb.History {
	hist := &historypb.History{}
	iter := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	return hist
}

// checkHistory replays a fresh history and, when recording, stores it.
func checkHistory(t *testing.T, hist *historypb.History, workflow any, file string) {
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflow)
	require.NoError(t, replayer.ReplayWorkflowHistory(nil, hist))
	if recordHistories {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(hist)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("testdata", file), b, 0o644))
	}
}

// TestOrderLiveRunReplays runs orders and a reservation on the dev server
// with stand-in activities, checks their outcomes and replays each fresh
// history; with RECORD_HISTORIES=1 it stores them in testdata/.
func TestOrderLiveRunReplays(t *testing.T) {
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflow(OrderWorkflow)
		w.RegisterWorkflow(ReserveInventoryWorkflow)
		w.RegisterWorkflow(TransferWorkflow)
		w.RegisterActivity(&standIns{})
	})
	orders := []struct {
		file    string
		mutate  func(o *events.OrderPlaced)
		outcome contract.OrderOutcome
		reason  string
	}{
		{"order_confirmed_v2.json", func(*events.OrderPlaced) {}, contract.OrderConfirmed, ""},
		{"order_payment_refused_v2.json", func(o *events.OrderPlaced) {
			o.Lines = []events.OrderLine{{SKU: "sku-a", Quantity: 3, UnitPrice: 5000}}
			o.Total = 15000
		}, contract.OrderCancelled, events.ReasonInsufficientFunds},
		{"order_reservation_refused_v2.json", func(o *events.OrderPlaced) {
			o.Lines = []events.OrderLine{{SKU: "out-of-stock", Quantity: 1, UnitPrice: 2500}}
		}, contract.OrderCancelled, events.ReasonInsufficientStock},
		// The ledger is away past the order's deadline and the withdraw's
		// last attempt (a command's timeout at least): the payment gives up,
		// finds out once the ledger is back whether the withdraw went
		// through, and the order is cancelled with its stock released.
		{"order_deadline_passed_v2.json", func(o *events.OrderPlaced) {
			o.Lines = []events.OrderLine{{SKU: "sku-a", Quantity: 1, UnitPrice: ledgerDownAmount}}
			o.Total = ledgerDownAmount
			o.Deadline = time.Now().Add(3 * time.Second)
			ledgerBackAt.Store(time.Now().Add(CommandTimeout + 2*time.Second).UnixNano())
		}, contract.OrderCancelled, contract.ReasonDeadlinePassed},
	}
	for i, oc := range orders {
		t.Run(oc.file, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			order := testOrder
			order.OrderID = fmt.Sprintf("replay-%d-%s", i, queue)
			oc.mutate(&order)
			run, err := c.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, queue), OrderWorkflow, order)
			require.NoError(t, err)
			var res contract.OrderResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, oc.outcome, res.Outcome, res.Error)
			require.Equal(t, oc.reason, res.Reason)

			desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
			require.NoError(t, err)
			require.Contains(t, desc.GetWorkflowExecutionInfo().GetMemo().GetFields(), contract.MemoOrderTotal)

			checkHistory(t, fetchHistory(ctx, t, c, run.GetID(), run.GetRunID()), OrderWorkflow, oc.file)
		})
	}

	t.Run("reservation_released_by_update.json", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		in := testReservation
		in.ReservationID = "replay-release-" + queue
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.ReservationWorkflowID(in.ReservationID), TaskQueue: queue}, ReserveInventoryWorkflow, in)
		require.NoError(t, err)
		// The update is rejected until the stock is held, and only the
		// workflow knows when that is: poll its status with a deadline.
		require.Eventually(t, func() bool {
			v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), contract.QueryStatus)
			if err != nil {
				return false
			}
			var st contract.ReservationState
			return v.Get(&st) == nil && st.Hold == contract.HoldHeld
		}, 30*time.Second, 50*time.Millisecond)
		handle, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: run.GetID(), RunID: run.GetRunID(), UpdateName: contract.SignalRelease,
			Args: []any{contract.ReleaseRequest{}}, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		require.NoError(t, err)
		var upd contract.ReservationResult
		require.NoError(t, handle.Get(ctx, &upd))
		require.Equal(t, contract.ReservationReleased, upd.Outcome)
		var res contract.ReservationResult
		require.NoError(t, run.Get(ctx, &res))
		require.Equal(t, upd, res)
		checkHistory(t, fetchHistory(ctx, t, c, run.GetID(), run.GetRunID()), ReserveInventoryWorkflow, "reservation_released_by_update.json")
	})
}

// gate holds the first call of an activity until the test opens it, so a
// test can act while a step is running; later calls pass.
type gate struct {
	first   sync.Once
	started chan struct{} // closed when the first call started
	open    chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) pass(ctx context.Context) {
	held := false
	g.first.Do(func() {
		held = true
		close(g.started)
	})
	if held {
		select {
		case <-g.open:
		case <-ctx.Done():
		}
	}
}

// waitStarted waits for the first call.
func (g *gate) waitStarted(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30s", what)
	}
}

// operatorStandIns are standIns with the failures the cancel and operator
// paths need: sku "slow-reserve" holds the reserve and customer
// "slow-cust" the withdrawal at their gates; a reservation whose id holds
// "uncommittable" is refused its commit; merchant "broke-shop" is refused
// its first withdrawal (a refund) and "bankrupt-shop" every one.
type operatorStandIns struct {
	standIns
	reserveGate, withdrawGate *gate

	mu          sync.Mutex
	brokeRefund bool
}

func (s *operatorStandIns) ReserveInventory(ctx context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	for _, l := range cmd.Lines {
		if l.SKU == "slow-reserve" {
			s.reserveGate.pass(ctx)
		}
	}
	return s.standIns.ReserveInventory(ctx, cmd)
}

func (s *operatorStandIns) CommitInventory(ctx context.Context, cmd activities.InventoryCommand) (activities.CommandResult, error) {
	if strings.Contains(cmd.ReservationID, "uncommittable") {
		return activities.CommandResult{}, rejectionWith(events.CmdInventoryCommit, events.ReasonReservationNotHeld, "")
	}
	return s.standIns.CommitInventory(ctx, cmd)
}

func (s *operatorStandIns) Withdraw(ctx context.Context, cmd activities.LedgerCommand) (activities.CommandResult, error) {
	refuse := rejectionWith(events.CmdLedgerWithdraw, events.ReasonInsufficientFunds, "")
	switch cmd.AccountID {
	case "slow-cust":
		s.withdrawGate.pass(ctx)
	case "bankrupt-shop":
		return activities.CommandResult{}, refuse
	case "broke-shop":
		s.mu.Lock()
		first := !s.brokeRefund
		s.brokeRefund = true
		s.mu.Unlock()
		if first {
			return activities.CommandResult{}, refuse
		}
	}
	return s.standIns.Withdraw(ctx, cmd)
}

// waitEvent polls the history of workflow id until it holds an event of
// type typ.
func waitEvent(ctx context.Context, t *testing.T, c client.Client, id string, typ enumspb.EventType) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, e := range fetchHistory(ctx, t, c, id, "").GetEvents() {
			if e.GetEventType() == typ {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "the history of %s never held %s", id, typ)
}

// waitSagaStatus polls the order's status query until its saga status is
// want: only the workflow knows when it got there.
func waitSagaStatus(ctx context.Context, t *testing.T, c client.Client, id string, want contract.SagaStatus) {
	t.Helper()
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, id, "", contract.QueryStatus)
		if err != nil {
			return false
		}
		var st contract.OrderState
		return v.Get(&st) == nil && st.Status == want
	}, 30*time.Second, 50*time.Millisecond, "saga status of %s never became %s", id, want)
}

// TestOrderLiveRunReplaysCancelsAndOperators runs, on the dev server, the
// orders that end by a customer's cancel or an operator's hand, checks
// their outcomes and replays each fresh history; with RECORD_HISTORIES=1 it
// stores them in testdata/.
func TestOrderLiveRunReplaysCancelsAndOperators(t *testing.T) {
	acts := &operatorStandIns{reserveGate: newGate(), withdrawGate: newGate()}
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflow(OrderWorkflow)
		w.RegisterWorkflow(ReserveInventoryWorkflow)
		w.RegisterWorkflow(TransferWorkflow)
		w.RegisterActivity(acts)
	})
	t.Cleanup(func() {
		// Let a held activity return so the worker can stop.
		for _, g := range []*gate{acts.reserveGate, acts.withdrawGate} {
			select {
			case <-g.open:
			default:
				close(g.open)
			}
		}
	})
	operator := contract.OperatorAction{Operator: "ops@example.com", Reason: "merchant account topped up"}
	tests := []struct {
		file   string
		mutate func(o *events.OrderPlaced)
		// act drives the order once started.
		act  func(ctx context.Context, t *testing.T, id string)
		want contract.OrderResult
		// signals and children the history must hold, in order.
		signals  []string
		children []string
	}{
		{
			file: "order_cancelled_before_payment_v2.json",
			mutate: func(o *events.OrderPlaced) {
				o.Lines = []events.OrderLine{{SKU: "slow-reserve", Quantity: 1, UnitPrice: 2500}}
			},
			act: func(ctx context.Context, t *testing.T, id string) {
				acts.reserveGate.waitStarted(t, "the reserve")
				require.NoError(t, c.SignalWorkflow(ctx, id, "", contract.SignalCancel, contract.CancelRequest{Reason: "changed my mind"}))
				close(acts.reserveGate.open)
			},
			want:    contract.OrderResult{Outcome: contract.OrderCancelled, Reason: "changed my mind"},
			signals: []string{contract.SignalCancel},
		},
		{
			file:   "order_cancelled_during_payment_v2.json",
			mutate: func(o *events.OrderPlaced) { o.CustomerID = "slow-cust" },
			act: func(ctx context.Context, t *testing.T, id string) {
				acts.withdrawGate.waitStarted(t, "the payment's withdrawal")
				_, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
					WorkflowID: id, UpdateName: contract.SignalCancel, Args: []any{contract.CancelRequest{Reason: "found it cheaper"}},
					WaitForStage: client.WorkflowUpdateStageAccepted,
				})
				require.NoError(t, err)
				// The withdraw runs as a local activity, inside the
				// transfer's workflow task: the cancel reaches the transfer
				// as soon as the server recorded it there (the order then
				// records ExternalWorkflowExecutionCancelRequested), and
				// the transfer sees it when that task ends, whatever the
				// withdraw's reply.
				waitEvent(ctx, t, c, id, enumspb.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
				close(acts.withdrawGate.open)
			},
			want:     contract.OrderResult{Outcome: contract.OrderCancelled, Reason: "found it cheaper"},
			signals:  []string{"update:" + contract.SignalCancel},
			children: []string{contract.TransferWorkflowType},
		},
		{
			// The commit is refused, the refund too; the operator retries it.
			file:   "order_compensation_retried_v2.json",
			mutate: func(o *events.OrderPlaced) { o.MerchantID = "broke-shop"; o.OrderID += "-uncommittable" },
			act: func(ctx context.Context, t *testing.T, id string) {
				waitSagaStatus(ctx, t, c, id, contract.StatusCompensationFailed)
				require.NoError(t, c.SignalWorkflow(ctx, id, "", contract.SignalRetryCompensation, operator))
			},
			want:     contract.OrderResult{Outcome: contract.OrderCancelled, Reason: events.ReasonReservationNotHeld, FailedStep: contract.StepOrderCommit},
			signals:  []string{contract.SignalRetryCompensation},
			children: []string{contract.TransferWorkflowType, contract.TransferWorkflowType, contract.TransferWorkflowType},
		},
		{
			file:   "order_resolved_v2.json",
			mutate: func(o *events.OrderPlaced) { o.MerchantID = "bankrupt-shop"; o.OrderID += "-uncommittable" },
			act: func(ctx context.Context, t *testing.T, id string) {
				waitSagaStatus(ctx, t, c, id, contract.StatusCompensationFailed)
				require.NoError(t, c.SignalWorkflow(ctx, id, "", contract.SignalResolve,
					contract.OperatorAction{Operator: "ops@example.com", Reason: "refunded by bank transfer"}))
			},
			want:     contract.OrderResult{Outcome: contract.OrderResolved, Reason: events.ReasonReservationNotHeld, FailedStep: contract.StepOrderCommit},
			signals:  []string{contract.SignalResolve},
			children: []string{contract.TransferWorkflowType, contract.TransferWorkflowType},
		},
	}
	for i, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			order := testOrder
			order.OrderID = fmt.Sprintf("replay-op-%d-%s", i, queue)
			tc.mutate(&order)
			run, err := c.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, queue), OrderWorkflow, order)
			require.NoError(t, err)
			tc.act(ctx, t, run.GetID())
			var res contract.OrderResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, order.OrderID, res.OrderID)
			res.OrderID, res.Error = "", ""
			require.Equal(t, tc.want, res)
			hist := fetchHistory(ctx, t, c, run.GetID(), run.GetRunID())
			signals, children := signalsAndChildren(hist)
			require.Equal(t, tc.signals, signals)
			require.Equal(t, tc.children, children)
			checkHistory(t, hist, OrderWorkflow, tc.file)
		})
	}
}

// signalsAndChildren lists the signals (and, as "update:NAME", the accepted
// updates) a history received and the child workflows it started.
func signalsAndChildren(hist *historypb.History) (signals, children []string) {
	for _, ev := range hist.GetEvents() {
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
			signals = append(signals, a.GetSignalName())
		}
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			signals = append(signals, "update:"+a.GetAcceptedRequest().GetInput().GetName())
		}
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			children = append(children, a.GetWorkflowType().GetName())
		}
	}
	return signals, children
}
