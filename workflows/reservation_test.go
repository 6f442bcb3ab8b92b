package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// inv names the activities in mocks; it is never called.
var inv *activities.Activities

var testReservation = contract.ReservationInput{
	ReservationID: "r-1",
	OrderID:       "o-1",
	Lines:         []events.StockLine{{SKU: "sku-a", Quantity: 2}, {SKU: "sku-b", Quantity: 1}},
	TTL:           time.Hour,
}

// rejectionWith is a participant's rejection of cmd as the reply consumer
// reports it, with the reply's result as a second detail when not empty.
func rejectionWith(cmd, reason string, result string) error {
	details := []any{reason}
	if result != "" {
		details = append(details, json.RawMessage(result))
	}
	return temporal.NewNonRetryableApplicationError(cmd+" rejected: "+reason, activities.RejectionType(reason), nil, details...)
}

// sagaEnv is a test environment recording, in start order, every activity
// the sagas (parents and children) ran: "Type:step[:detail]".
type sagaEnv struct {
	env   *testsuite.TestWorkflowEnvironment
	calls []string
}

func newSagaEnv(t *testing.T) *sagaEnv {
	var s testsuite.WorkflowTestSuite
	h := &sagaEnv{env: s.NewTestWorkflowEnvironment()}
	h.env.RegisterActivity(&activities.Activities{})
	h.env.RegisterWorkflow(ReserveInventoryWorkflow)
	h.env.RegisterWorkflow(TransferWorkflow)
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		h.calls = append(h.calls, describeActivity(t, info.ActivityType.Name, args))
	})
	// The transfer and the order publish their events with local
	// activities, recorded as their regular namesakes are.
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, args []any) {
		require.Len(t, args, 1)
		h.calls = append(h.calls, describeLocal(t, info.ActivityType.Name, args[0]))
	})
	return h
}

// describeLocal describes a local activity's attempt as describeActivity
// does its regular namesake's.
func describeLocal(t *testing.T, name string, arg any) string {
	switch cmd := arg.(type) {
	case activities.InventoryCommand:
		if name == "ReleaseInventory" {
			return name + ":" + cmd.Step + ":" + cmd.Reason
		}
		return name + ":" + cmd.Step
	case activities.LedgerCommand:
		return name + ":" + cmd.Step + ":" + cmd.AccountID
	}
	return describeEvent(t, arg)
}

// describeEvent describes a published event as describeActivity does.
func describeEvent(t *testing.T, ev any) string {
	switch ev := ev.(type) {
	case activities.TransferEvent:
		return "Publish:" + ev.Type
	case activities.OrderEvent:
		return "Publish:" + ev.Type + ":" + ev.Reason + ":" + ev.FailedStep
	case activities.ReservationFailedEvent:
		return "PublishReservationFailed:" + ev.Reason
	}
	t.Fatalf("unexpected local activity input %T", ev)
	return ""
}

func describeActivity(t *testing.T, name string, args converter.EncodedValues) string {
	switch name {
	case "ReserveInventory", "CommitInventory":
		var cmd activities.InventoryCommand
		require.NoError(t, args.Get(&cmd))
		return name + ":" + cmd.Step
	case "ReleaseInventory":
		var cmd activities.InventoryCommand
		require.NoError(t, args.Get(&cmd))
		return name + ":" + cmd.Step + ":" + cmd.Reason
	case "PublishReservationFailed":
		var ev activities.ReservationFailedEvent
		require.NoError(t, args.Get(&ev))
		return name + ":" + ev.Reason
	case "PublishOrderEvent":
		var ev activities.OrderEvent
		require.NoError(t, args.Get(&ev))
		return "Publish:" + ev.Type + ":" + ev.Reason + ":" + ev.FailedStep
	case "PublishTransferEvent":
		var ev activities.TransferEvent
		require.NoError(t, args.Get(&ev))
		return "Publish:" + ev.Type
	default:
		var cmd activities.LedgerCommand
		require.NoError(t, args.Get(&cmd))
		return name + ":" + cmd.Step + ":" + cmd.AccountID
	}
}

// publishesSucceed makes every event publish succeed, whenever a saga
// publishes.
func (h *sagaEnv) publishesSucceed() {
	h.env.OnActivity(inv.PublishReservationFailed, mock.Anything, mock.Anything).Return(nil).Maybe()
	h.env.OnActivity(inv.PublishTransferEvent, mock.Anything, mock.Anything).Return(nil).Maybe()
	h.env.OnActivity(inv.PublishOrderEvent, mock.Anything, mock.Anything).Return(nil).Maybe()
}

func (h *sagaEnv) update(name string, delay time.Duration, arg any, cb *testsuite.TestUpdateCallback) {
	h.env.RegisterDelayedCallback(func() {
		if arg == nil {
			h.env.UpdateWorkflow(name, name+"-"+delay.String(), cb)
			return
		}
		h.env.UpdateWorkflow(name, name+"-"+delay.String(), cb, arg)
	}, delay)
}

// updateOutcome collects what an update answered.
type updateOutcome struct {
	rejected error
	result   any
	err      error
	done     bool
}

func (u *updateOutcome) callback() *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { u.rejected = err; u.done = true },
		OnComplete: func(res any, err error) { u.result, u.err, u.done = res, err, true },
	}
}

func reservationState(t *testing.T, env *testsuite.TestWorkflowEnvironment) contract.ReservationState {
	v, err := env.QueryWorkflow(contract.QueryStatus)
	require.NoError(t, err)
	var st contract.ReservationState
	require.NoError(t, v.Get(&st))
	return st
}

func TestReserveInventoryWorkflow(t *testing.T) {
	ok := activities.CommandResult{}
	const (
		reserve  = "ReserveInventory:reserve"
		commit   = "CommitInventory:commit"
		released = "ReleaseInventory:release:released"
		expired  = "ReleaseInventory:release:expired"
		undone   = "ReleaseInventory:release:compensated"
	)
	tests := []struct {
		name  string
		setup func(t *testing.T, h *sagaEnv)
		want  contract.ReservationResult
		// wantErrType is the application error type the workflow fails with;
		// "canceled" for a cancellation.
		wantErrType string
		calls       []string
		hold        contract.HoldState
		status      contract.SagaStatus
		// elapsed is how far the workflow clock must have moved.
		elapsed time.Duration
	}{
		{
			name: "commit by update",
			setup: func(t *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				var u updateOutcome
				h.update(contract.SignalCommit, time.Minute, nil, u.callback())
				t.Cleanup(func() {
					require.True(t, u.done)
					require.NoError(t, u.rejected)
					require.NoError(t, u.err)
					require.Equal(t, contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationCommitted}, u.result)
				})
			},
			want:   contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationCommitted},
			calls:  []string{reserve, commit},
			hold:   contract.HoldCommitted,
			status: contract.StatusCompleted,
		},
		{
			name: "commit by signal",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(contract.SignalCommit, nil) }, time.Minute)
			},
			want:   contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationCommitted},
			calls:  []string{reserve, commit},
			hold:   contract.HoldCommitted,
			status: contract.StatusCompleted,
		},
		{
			name: "release by update",
			setup: func(t *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				var u updateOutcome
				h.update(contract.SignalRelease, time.Minute, contract.ReleaseRequest{}, u.callback())
				t.Cleanup(func() {
					require.NoError(t, u.err)
					require.Equal(t, contract.ReservationReleased, u.result.(contract.ReservationResult).Outcome)
				})
			},
			want:   contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationReleased, ReleaseReason: events.ReleaseReasonReleased},
			calls:  []string{reserve, released},
			hold:   contract.HoldReleased,
			status: contract.StatusCompleted,
		},
		{
			name: "release by signal with reason compensated",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(func() {
					h.env.SignalWorkflow(contract.SignalRelease, contract.ReleaseRequest{Reason: events.ReleaseReasonCompensated})
				}, time.Minute)
			},
			want:   contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationReleased, ReleaseReason: events.ReleaseReasonCompensated},
			calls:  []string{reserve, undone},
			hold:   contract.HoldReleased,
			status: contract.StatusCompleted,
		},
		{
			// Nothing claims the hold: the workflow timer fires at the TTL.
			name: "time-to-live expires",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
			},
			want:    contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationExpired, ReleaseReason: events.ReleaseReasonExpired},
			calls:   []string{reserve, expired},
			hold:    contract.HoldReleased,
			status:  contract.StatusCompleted,
			elapsed: time.Hour,
		},
		{
			name: "reserve refused: reservation_failed names the failing lines",
			setup: func(t *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).
					Return(ok, rejectionWith(events.CmdInventoryReserve, events.ReasonInsufficientStock, `{"failed_lines":[{"sku":"sku-b","quantity":1}]}`)).Once()
				h.env.OnActivity(inv.PublishReservationFailed, mock.Anything, mock.MatchedBy(func(ev activities.ReservationFailedEvent) bool {
					return ev.Step == contract.StepPublishReservationKO && ev.OrderID == "o-1" &&
						len(ev.FailedLines) == 1 && ev.FailedLines[0] == events.StockLine{SKU: "sku-b", Quantity: 1}
				})).Return(nil).Once()
			},
			wantErrType: contract.ErrTypeReservationFailed,
			calls:       []string{reserve, "PublishReservationFailed:insufficient_stock"},
			hold:        contract.HoldFailed,
			status:      contract.StatusCompensated,
		},
		{
			// The commit is refused after the hold was lost: the saga
			// releases (nothing held is fine) and fails.
			name: "commit refused: release and fail",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.CommitInventory, mock.Anything, mock.Anything).
					Return(ok, rejectionWith(events.CmdInventoryCommit, events.ReasonReservationNotHeld, "")).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).
					Return(ok, rejectionWith(events.CmdInventoryRelease, events.ReasonReservationNotHeld, "")).Once()
				h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(contract.SignalCommit, nil) }, time.Minute)
			},
			wantErrType: contract.ErrTypeReservationAborted,
			calls:       []string{reserve, commit, undone},
			hold:        contract.HoldReleased,
			status:      contract.StatusCompensated,
		},
		{
			name: "commit update after a release is rejected by the validator",
			setup: func(t *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).After(time.Minute).Return(ok, nil).Once()
				var rel, com updateOutcome
				h.update(contract.SignalRelease, time.Minute, contract.ReleaseRequest{}, rel.callback())
				h.update(contract.SignalCommit, 90*time.Second, nil, com.callback())
				t.Cleanup(func() {
					require.NoError(t, rel.err)
					require.ErrorContains(t, com.rejected, "cannot commit reservation r-1: it is releasing")
				})
			},
			want:   contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationReleased, ReleaseReason: events.ReleaseReasonReleased},
			calls:  []string{reserve, released},
			hold:   contract.HoldReleased,
			status: contract.StatusCompleted,
		},
		{
			name: "commit update before the stock is held is rejected",
			setup: func(t *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).After(time.Minute).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				var com updateOutcome
				h.update(contract.SignalCommit, time.Second, nil, com.callback())
				t.Cleanup(func() { require.ErrorContains(t, com.rejected, "it is reserving") })
			},
			want:    contract.ReservationResult{ReservationID: "r-1", Outcome: contract.ReservationExpired, ReleaseReason: events.ReleaseReasonExpired},
			calls:   []string{reserve, expired},
			hold:    contract.HoldReleased,
			status:  contract.StatusCompleted,
			elapsed: time.Hour + time.Minute,
		},
		{
			name: "cancelled while held: release compensated",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Minute)
			},
			wantErrType: "canceled",
			calls:       []string{reserve, undone},
			hold:        contract.HoldReleased,
			status:      contract.StatusCancelled,
		},
		{
			// The reserve's reply never came and the workflow was cancelled:
			// the compensation resends the reserve (same command id) to learn
			// whether it took effect, then releases.
			name: "cancelled while reserving: resend reserve, then release",
			setup: func(_ *testing.T, h *sagaEnv) {
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).After(5*time.Second).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(inv.ReleaseInventory, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Second)
			},
			wantErrType: "canceled",
			calls:       []string{reserve, reserve, undone},
			hold:        contract.HoldReleased,
			status:      contract.StatusCancelled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newSagaEnv(t)
			start := h.env.Now()
			tc.setup(t, h)
			h.env.ExecuteWorkflow(ReserveInventoryWorkflow, testReservation)
			require.True(t, h.env.IsWorkflowCompleted())

			err := h.env.GetWorkflowError()
			switch tc.wantErrType {
			case "":
				require.NoError(t, err)
				var res contract.ReservationResult
				require.NoError(t, h.env.GetWorkflowResult(&res))
				require.Equal(t, tc.want, res)
			case "canceled":
				require.True(t, temporal.IsCanceledError(err), "want a cancellation, got %v", err)
			default:
				var appErr *temporal.ApplicationError
				require.True(t, errors.As(err, &appErr), "want an application error, got %v", err)
				require.Equal(t, tc.wantErrType, appErr.Type())
			}
			require.Equal(t, tc.calls, h.calls)
			st := reservationState(t, h.env)
			require.Equal(t, tc.hold, st.Hold)
			require.Equal(t, tc.status, st.Status)
			require.GreaterOrEqual(t, h.env.Now().Sub(start), tc.elapsed)
			h.env.AssertExpectations(t)
		})
	}
}

// TestReservationRefusalDetails proves the parent can read the reason and
// the failing lines from the child's failure.
func TestReservationRefusalDetails(t *testing.T) {
	h := newSagaEnv(t)
	h.env.OnActivity(inv.ReserveInventory, mock.Anything, mock.Anything).
		Return(activities.CommandResult{}, rejectionWith(events.CmdInventoryReserve, events.ReasonUnknownSKU, `[{"sku":"sku-a","quantity":2}]`)).Once()
	h.env.OnActivity(inv.PublishReservationFailed, mock.Anything, mock.Anything).Return(nil).Once()
	h.env.ExecuteWorkflow(ReserveInventoryWorkflow, testReservation)
	reason, lines, ok := ReservationRefusal(h.env.GetWorkflowError())
	require.True(t, ok)
	require.Equal(t, events.ReasonUnknownSKU, reason)
	require.Equal(t, []events.StockLine{{SKU: "sku-a", Quantity: 2}}, lines)
}

func TestReserveInventoryWorkflowRejectsInvalidInput(t *testing.T) {
	h := newSagaEnv(t)
	in := testReservation
	in.TTL = 0
	in.Lines = nil
	h.env.ExecuteWorkflow(ReserveInventoryWorkflow, in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(h.env.GetWorkflowError(), &appErr))
	require.Equal(t, contract.ErrTypeInvalidReservation, appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.ErrorContains(t, appErr, "ttl")
	require.ErrorContains(t, appErr, "lines")
	require.Empty(t, h.calls)
}

// TestReservationLiveRunReplaysExpiryAndRefusal runs, on the dev server, a
// reservation whose time-to-live passes and one the inventory refuses,
// checks their outcomes and replays each fresh history; with
// RECORD_HISTORIES=1 it stores them in testdata/.
func TestReservationLiveRunReplaysExpiryAndRefusal(t *testing.T) {
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflow(ReserveInventoryWorkflow)
		w.RegisterActivity(&standIns{})
	})
	start := func(ctx context.Context, t *testing.T, name string, in contract.ReservationInput) client.WorkflowRun {
		in.ReservationID = "replay-" + name + "-" + queue
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.ReservationWorkflowID(in.ReservationID), TaskQueue: queue}, ReserveInventoryWorkflow, in)
		require.NoError(t, err)
		return run
	}

	t.Run("reservation_expired.json", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		in := testReservation
		in.TTL = time.Second // a real timer on the dev server
		run := start(ctx, t, "expired", in)
		var res contract.ReservationResult
		require.NoError(t, run.Get(ctx, &res))
		require.Equal(t, contract.ReservationExpired, res.Outcome)
		require.Equal(t, events.ReleaseReasonExpired, res.ReleaseReason)
		hist := fetchHistory(ctx, t, c, run.GetID(), run.GetRunID())
		var fired int
		for _, ev := range hist.GetEvents() {
			if ev.GetTimerFiredEventAttributes() != nil {
				fired++
			}
		}
		require.Equal(t, 1, fired, "the time-to-live timer fired")
		checkHistory(t, hist, ReserveInventoryWorkflow, "reservation_expired.json")
	})

	t.Run("reservation_refused.json", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		in := testReservation
		in.Lines = []events.StockLine{{SKU: "sku-a", Quantity: 1}, {SKU: "out-of-stock", Quantity: 1}}
		run := start(ctx, t, "refused", in)
		err := run.Get(ctx, nil)
		reason, lines, ok := ReservationRefusal(err)
		require.True(t, ok, "want a refusal, got %v", err)
		require.Equal(t, events.ReasonInsufficientStock, reason)
		require.Equal(t, []events.StockLine{{SKU: "out-of-stock", Quantity: 1}}, lines)
		checkHistory(t, fetchHistory(ctx, t, c, run.GetID(), run.GetRunID()), ReserveInventoryWorkflow, "reservation_refused.json")
	})
}
