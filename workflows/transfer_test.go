package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

var a *activities.Activities

var validTransfer = contract.TransferInput{TransferID: "t-1", SourceAccountID: "acc-src", TargetAccountID: "acc-dst", Amount: 2500, Currency: "EUR"}

func rejection(cmd, reason string) error {
	return activities.RejectionError(events.Reply{CommandID: "c-1", CommandType: cmd, Status: events.ReplyRejected, Reason: reason})
}

var errBrokerDown = errors.New("publish ledger.deposit: amqp: connection lost")

func step(name string) any {
	return mock.MatchedBy(func(c activities.LedgerCommand) bool { return c.Step == name })
}

// harness wraps a test environment recording what the saga did.
type harness struct {
	env       *testsuite.TestWorkflowEnvironment
	calls     []string // activity type and step, in start order
	statuses  []contract.SagaStatus
	published []activities.TransferEvent
	// localPublishes and publishActivities count the outcome publish's
	// attempts as a local activity and as a regular one.
	localPublishes, publishActivities int
	// localCommands and regularCommands count the attempts of ledger
	// steps run as local activities and as regular ones.
	localCommands, regularCommands int
}

// newHarnessPublishingWith is a harness whose test mocks the outcome
// publish itself.
func newHarnessPublishingWith(t *testing.T) *harness {
	var s testsuite.WorkflowTestSuite
	h := &harness{env: s.NewTestWorkflowEnvironment()}
	h.env.RegisterActivity(&activities.Activities{})
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, args []any) {
		require.Len(t, args, 1)
		if cmd, ok := args[0].(activities.LedgerCommand); ok {
			// A forward step run locally is recorded as its regular
			// namesake is.
			h.localCommands++
			h.calls = append(h.calls, info.ActivityType.Name+":"+cmd.Step+":"+cmd.AccountID)
			return
		}
		require.Equal(t, "PublishTransferEvent", info.ActivityType.Name, "only the forward steps and the outcome publish run locally")
		ev, ok := args[0].(activities.TransferEvent)
		require.True(t, ok, "argument %T", args[0])
		h.localPublishes++
		h.published = append(h.published, ev)
		h.calls = append(h.calls, "Publish:"+ev.Type)
	})
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		name := info.ActivityType.Name
		if name == "PublishTransferEvent" {
			var ev activities.TransferEvent
			require.NoError(t, args.Get(&ev))
			h.publishActivities++
			h.published = append(h.published, ev)
			h.calls = append(h.calls, "Publish:"+ev.Type)
			return
		}
		var cmd activities.LedgerCommand
		require.NoError(t, args.Get(&cmd))
		h.regularCommands++
		h.calls = append(h.calls, name+":"+cmd.Step+":"+cmd.AccountID)
	})
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		v, ok := sa.GetKeyword(contract.SagaStatusKey)
		require.True(t, ok)
		h.statuses = append(h.statuses, contract.SagaStatus(v))
	}).Return(nil)
	return h
}

func newHarness(t *testing.T) *harness {
	h := newHarnessPublishingWith(t)
	h.env.OnActivity(a.PublishTransferEvent, mock.Anything, mock.Anything).Return(nil)
	return h
}

func (h *harness) status(t *testing.T) contract.SagaState {
	v, err := h.env.QueryWorkflow(contract.QueryStatus)
	require.NoError(t, err)
	var st contract.SagaState
	require.NoError(t, v.Get(&st))
	return st
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestTransferWorkflow(t *testing.T) {
	ok := activities.CommandResult{}
	const (
		withdraw = "Withdraw:withdraw:acc-src"
		deposit  = "Deposit:deposit:acc-dst"
		refund   = "Refund:refund:acc-src"
		reverse  = "Withdraw:reverse-deposit:acc-dst"
	)
	tests := []struct {
		name     string
		setup    func(t *testing.T, h *harness)
		want     contract.TransferResult
		wantErr  string // substring of the workflow error, "" for none
		calls    []string
		statuses []contract.SagaStatus
		// published is the outcome event's type and reason.
		published []string
	}{
		{
			name: "success",
			setup: func(_ *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, nil).Once()
			},
			want:      contract.TransferResult{TransferID: "t-1", Outcome: contract.TransferCompleted},
			calls:     []string{withdraw, deposit, "Publish:transfer.completed"},
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompleted},
			published: []string{events.TypeTransferCompleted, ""},
		},
		{
			name: "withdraw rejected: no deposit, no refund",
			setup: func(_ *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, rejection(events.CmdLedgerWithdraw, events.ReasonInsufficientFunds)).Once()
			},
			want:      contract.TransferResult{TransferID: "t-1", Outcome: contract.TransferFailed, Reason: events.ReasonInsufficientFunds},
			calls:     []string{withdraw, "Publish:transfer.failed"},
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompensating, contract.StatusCompensated},
			published: []string{events.TypeTransferFailed, events.ReasonInsufficientFunds},
		},
		{
			name: "deposit rejected: refund",
			setup: func(_ *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, rejection(events.CmdLedgerDeposit, events.ReasonAccountClosed)).Once()
				h.env.OnActivity(a.Refund, mock.Anything, mock.Anything).Return(ok, nil).Once()
			},
			want:      contract.TransferResult{TransferID: "t-1", Outcome: contract.TransferCompensated, Reason: events.ReasonAccountClosed},
			calls:     []string{withdraw, deposit, refund, "Publish:transfer.failed"},
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompensating, contract.StatusCompensated},
			published: []string{events.TypeTransferFailed, events.ReasonAccountClosed},
		},
		{
			name: "deposit fails twice transiently then succeeds",
			setup: func(_ *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, errBrokerDown).Twice()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, nil).Once()
			},
			want:      contract.TransferResult{TransferID: "t-1", Outcome: contract.TransferCompleted},
			calls:     []string{withdraw, deposit, deposit, deposit, "Publish:transfer.completed"},
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompleted},
			published: []string{events.TypeTransferCompleted, ""},
		},
		{
			// The broker is down for far longer than the five attempts
			// steps once had: the deposit keeps retrying (same command id)
			// until it is back, and the transfer completes.
			name: "deposit fails for 40 attempts, then succeeds: completed",
			setup: func(_ *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, errBrokerDown).Times(40)
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, nil).Once()
			},
			want:      contract.TransferResult{TransferID: "t-1", Outcome: contract.TransferCompleted},
			calls:     concat([]string{withdraw}, repeat(deposit, 41), []string{"Publish:transfer.completed"}),
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompleted},
			published: []string{events.TypeTransferCompleted, ""},
		},
		{
			name: "cancelled during the deposit: refund on a disconnected context",
			setup: func(_ *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).After(5*time.Second).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, rejection(events.CmdLedgerDeposit, events.ReasonAccountClosed)).Once()
				h.env.OnActivity(a.Refund, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Second)
			},
			wantErr:   "canceled",
			calls:     []string{withdraw, deposit, deposit, refund, "Publish:transfer.failed"},
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompensating, contract.StatusCancelled},
			published: []string{events.TypeTransferFailed, "cancelled"},
		},
		{
			name: "refund fails, operator retries: compensated",
			setup: func(t *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, rejection(events.CmdLedgerDeposit, events.ReasonAccountClosed)).Once()
				h.env.OnActivity(a.Refund, mock.Anything, mock.Anything).Return(ok, errBrokerDown).Times(int(compensationRetry().MaximumAttempts))
				h.env.OnActivity(a.Refund, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.RegisterDelayedCallback(func() {
					st := h.status(t)
					require.Equal(t, contract.StatusCompensationFailed, st.Status)
					require.Equal(t, []string{contract.StepWithdraw}, st.CompletedSteps)
					require.Len(t, st.Compensations, 2)
					require.Equal(t, contract.CompensationState{Name: contract.StepDeposit, Status: contract.CompensationDropped}, st.Compensations[1])
					require.Equal(t, contract.CompensationFailed, st.Compensations[0].Status)
					require.Contains(t, st.Compensations[0].Error, "connection lost")
					require.Contains(t, st.Failure, events.ReasonAccountClosed)
					h.env.SignalWorkflow(contract.SignalRetryCompensation, contract.OperatorAction{Operator: "alice", Reason: "broker back"})
				}, 2*time.Hour)
			},
			want:      contract.TransferResult{TransferID: "t-1", Outcome: contract.TransferCompensated, Reason: events.ReasonAccountClosed},
			calls:     concat([]string{withdraw, deposit}, repeat(refund, int(compensationRetry().MaximumAttempts)+1), []string{"Publish:transfer.failed"}),
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompensating, contract.StatusCompensationFailed, contract.StatusCompensating, contract.StatusCompensated},
			published: []string{events.TypeTransferFailed, events.ReasonAccountClosed},
		},
		{
			name: "refund fails, operator resolves",
			setup: func(_ *testing.T, h *harness) {
				h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
				h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, rejection(events.CmdLedgerDeposit, events.ReasonAccountClosed)).Once()
				h.env.OnActivity(a.Refund, mock.Anything, mock.Anything).Return(ok, rejection(events.CmdLedgerRefund, events.ReasonAccountFrozen)).Once()
				h.env.RegisterDelayedCallback(func() {
					h.env.SignalWorkflow(contract.SignalResolve, contract.OperatorAction{Operator: "bob", Reason: "refunded by hand"})
				}, time.Hour)
			},
			want:      contract.TransferResult{TransferID: "t-1", Outcome: contract.TransferResolved, Reason: events.ReasonAccountClosed, ResolvedBy: &contract.OperatorAction{Operator: "bob", Reason: "refunded by hand"}},
			calls:     []string{withdraw, deposit, refund, "Publish:transfer.failed"},
			statuses:  []contract.SagaStatus{contract.StatusRunning, contract.StatusCompensating, contract.StatusCompensationFailed, contract.StatusResolved},
			published: []string{events.TypeTransferFailed, "resolved_by_operator"},
		},
	}
	// Every case runs at every version of LocalOutcomePublishChange: a
	// transfer started before a version still behaves the same, running
	// its steps or publishing with regular activities.
	versions := []struct {
		name    string
		version workflow.Version
	}{
		{"local steps", localTransferSteps},
		{"local publish", localOutcomePublish},
		{"started before the local publish", workflow.DefaultVersion},
	}
	for _, v := range versions {
		for _, tc := range tests {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				h := newHarness(t)
				h.env.OnGetVersion(LocalOutcomePublishChange, workflow.DefaultVersion, localTransferSteps).Return(v.version)
				tc.setup(t, h)
				h.env.ExecuteWorkflow(TransferWorkflow, validTransfer)
				require.True(t, h.env.IsWorkflowCompleted())
				if tc.wantErr != "" {
					require.ErrorContains(t, h.env.GetWorkflowError(), tc.wantErr)
				} else {
					require.NoError(t, h.env.GetWorkflowError())
					var got contract.TransferResult
					require.NoError(t, h.env.GetWorkflowResult(&got))
					got.Error = "" // the full text is checked where it matters
					require.Equal(t, tc.want, got)
				}
				require.Equal(t, tc.calls, h.calls)
				require.Equal(t, tc.statuses, h.statuses)
				require.Len(t, h.published, 1)
				require.Equal(t, tc.published, []string{h.published[0].Type, h.published[0].Reason})
				require.Equal(t, contract.StepPublishOutcome, h.published[0].Step)
				require.Equal(t, tc.statuses[len(tc.statuses)-1], h.status(t).Status)
				if v.version >= localOutcomePublish {
					require.Equal(t, [2]int{1, 0}, [2]int{h.localPublishes, h.publishActivities}, "published by a local activity")
				} else {
					require.Equal(t, [2]int{0, 1}, [2]int{h.localPublishes, h.publishActivities}, "published by a regular activity")
				}
				if v.version >= localTransferSteps {
					require.Positive(t, h.localCommands, "the forward steps ran locally")
				} else {
					require.Zero(t, h.localCommands, "every step ran as a regular activity")
				}
				h.env.AssertExpectations(t)
			})
		}
	}
}

func TestTransferWorkflowRejectsInvalidInput(t *testing.T) {
	tests := []struct {
		name  string
		input func(in *contract.TransferInput)
	}{
		{"zero amount", func(in *contract.TransferInput) { in.Amount = 0 }},
		{"negative amount", func(in *contract.TransferInput) { in.Amount = -5 }},
		{"same account", func(in *contract.TransferInput) { in.TargetAccountID = in.SourceAccountID }},
		{"bad currency", func(in *contract.TransferInput) { in.Currency = "euro" }},
		{"missing transfer id", func(in *contract.TransferInput) { in.TransferID = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			in := validTransfer
			tc.input(&in)
			h.env.ExecuteWorkflow(TransferWorkflow, in)
			err := h.env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.Equal(t, contract.ErrTypeInvalidTransfer, appErr.Type())
			require.True(t, appErr.NonRetryable())
			require.Empty(t, h.calls)
		})
	}
}

func TestTransferStatusQueryWhileRunning(t *testing.T) {
	h := newHarness(t)
	ok := activities.CommandResult{}
	h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).After(5*time.Second).Return(ok, nil).Once()
	h.env.RegisterDelayedCallback(func() {
		st := h.status(t)
		require.Equal(t, contract.StatusRunning, st.Status)
		require.Equal(t, contract.StepDeposit, st.CurrentStep)
		require.Equal(t, []string{contract.StepWithdraw}, st.CompletedSteps)
		require.Equal(t, []contract.CompensationState{
			{Name: contract.StepWithdraw, Status: contract.CompensationRegistered},
			{Name: contract.StepDeposit, Status: contract.CompensationRegistered},
		}, st.Compensations)
	}, time.Second)
	h.env.ExecuteWorkflow(TransferWorkflow, validTransfer)
	require.NoError(t, h.env.GetWorkflowError())
	st := h.status(t)
	require.Equal(t, contract.StatusCompleted, st.Status)
	require.Empty(t, st.CurrentStep)
	require.Equal(t, []string{contract.StepWithdraw, contract.StepDeposit}, st.CompletedSteps)
}

// A broker down for longer than the local publish's budget: the local
// activity gives up within it, a regular activity takes the publish over
// and retries it on the server until the broker is back, and the transfer
// completes with its outcome published.
func TestTransferOutcomeSurvivesALongBrokerOutage(t *testing.T) {
	ok := activities.CommandResult{}
	h := newHarnessPublishingWith(t)
	h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, nil).Once()
	regularAttempts := 0
	h.env.OnActivity(a.PublishTransferEvent, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.TransferEvent) error {
		if activity.GetInfo(ctx).IsLocalActivity {
			return errBrokerDown
		}
		regularAttempts++
		if regularAttempts < 3 {
			return errBrokerDown
		}
		return nil
	})
	var started time.Time
	var localSpan time.Duration
	h.env.SetOnLocalActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) {
		if started.IsZero() {
			started = h.env.Now()
		}
		localSpan = h.env.Now().Sub(started)
	})
	h.env.ExecuteWorkflow(TransferWorkflow, validTransfer)
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var got contract.TransferResult
	require.NoError(t, h.env.GetWorkflowResult(&got))
	require.Equal(t, contract.TransferCompleted, got.Outcome)

	require.Greater(t, h.localPublishes, 3, "the local activity retried first")
	require.LessOrEqual(t, localSpan, localPublishBudget, "within its budget")
	require.Equal(t, 3, h.publishActivities, "then a regular activity retried until the broker was back")
	require.Equal(t, 3, regularAttempts)
	for _, ev := range h.published {
		require.Equal(t, contract.StepPublishOutcome, ev.Step, "every attempt publishes the same event id")
		require.Equal(t, events.TypeTransferCompleted, ev.Type)
	}
}

// A malformed event is not retried by either kind of activity: the local
// publish's non-retryable error fails the workflow as the regular publish's
// did, instead of handing it over.
func TestTransferMalformedOutcomeIsNotHandedOver(t *testing.T) {
	ok := activities.CommandResult{}
	h := newHarnessPublishingWith(t)
	h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.env.OnActivity(a.PublishTransferEvent, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError("publish transfer event: unexpected type", activities.ErrTypeInvalidEvent, nil)).Once()
	h.env.ExecuteWorkflow(TransferWorkflow, validTransfer)
	require.True(t, h.env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, h.env.GetWorkflowError(), &appErr)
	require.Equal(t, activities.ErrTypeInvalidEvent, appErr.Type())
	require.Equal(t, [2]int{1, 0}, [2]int{h.localPublishes, h.publishActivities})
}

// The local publish's retries stay inside the workflow task (the SDK
// retries on a server timer, one marker, timer and workflow task per
// attempt, once a backoff exceeds the workflow task timeout) and are
// bounded, with the regular activity's unlimited retries behind them.
func TestLocalPublishRetryPolicy(t *testing.T) {
	const defaultWorkflowTaskTimeout = 10 * time.Second
	opts := localPublishOptions(contract.StepPublishOutcome)
	require.Less(t, opts.RetryPolicy.MaximumInterval, defaultWorkflowTaskTimeout, "contract.TransferStartOptions keeps the server's default workflow task timeout")
	require.Zero(t, contract.TransferStartOptions("t", "").WorkflowTaskTimeout, "the bound above assumes the default")
	require.Less(t, opts.StartToCloseTimeout, defaultWorkflowTaskTimeout)
	require.Positive(t, opts.ScheduleToCloseTimeout, "a zero budget would default to one attempt's timeout")
	require.Greater(t, opts.ScheduleToCloseTimeout, 4*opts.StartToCloseTimeout, "room for several attempts")
	require.Empty(t, opts.RetryPolicy.NonRetryableErrorTypes, "only the activity's own non-retryable errors stop it")
	require.Equal(t, contract.StepPublishOutcome, opts.Summary, "the audit trail names the step by it")
}

// TestLocalStepGoesOnAsARegularActivity: a deposit the broker cannot take
// for longer than the local budget is retried locally, then goes on as a
// regular activity (the server retries it without the history growing)
// until the broker is back, and the transfer completes.
func TestLocalStepGoesOnAsARegularActivity(t *testing.T) {
	h := newHarness(t)
	ok := activities.CommandResult{}
	var down time.Time
	h.env.OnActivity(a.Withdraw, mock.Anything, mock.Anything).Return(ok, nil).Once()
	h.env.OnActivity(a.Deposit, mock.Anything, mock.Anything).Return(func(context.Context, activities.LedgerCommand) (activities.CommandResult, error) {
		if down.IsZero() {
			down = h.env.Now()
		}
		if h.env.Now().Sub(down) < 2*localCommandBudget {
			return ok, errBrokerDown
		}
		return ok, nil
	})
	h.env.ExecuteWorkflow(TransferWorkflow, validTransfer)
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res contract.TransferResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, contract.TransferCompleted, res.Outcome)
	require.Greater(t, h.localCommands, 2, "the withdraw and the deposit's local attempts")
	require.Positive(t, h.regularCommands, "the deposit went on as a regular activity")
	require.Equal(t, "Deposit:deposit:acc-dst", h.calls[len(h.calls)-2], "the last attempt before the publish")
}
