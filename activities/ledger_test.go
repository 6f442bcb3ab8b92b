package activities

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

func TestLedgerCommandsArePublishedWithDeterministicIDs(t *testing.T) {
	cmd := LedgerCommand{Step: "withdraw", AccountID: "acc-1", Amount: 500, Currency: "EUR", TransferID: "t-1"}
	tests := []struct {
		name string
		run  func(a *Activities) any
		typ  string
	}{
		{"withdraw", func(a *Activities) any { return a.Withdraw }, events.CmdLedgerWithdraw},
		{"deposit", func(a *Activities) any { return a.Deposit }, events.CmdLedgerDeposit},
		{"refund", func(a *Activities) any { return a.Refund }, events.CmdLedgerRefund},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			a := newTestActivities(t, pub, &fakeCompleter{})
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			_, err := env.ExecuteActivity(tc.run(a), cmd)
			require.ErrorIs(t, err, activity.ErrResultPending)
			_, err = env.ExecuteActivity(tc.run(a), cmd) // a retry resends the same id
			require.ErrorIs(t, err, activity.ErrResultPending)

			require.Len(t, pub.msgs, 2)
			m := pub.msgs[0]
			ref, err := ParseActivityRef(m.CorrelationID)
			require.NoError(t, err)
			require.Equal(t, events.DeterministicID(ref.WorkflowID, "withdraw"), m.ID)
			require.Equal(t, m.ID, pub.msgs[1].ID)
			require.Equal(t, "", m.Exchange)
			require.Equal(t, contract.LedgerQueue, m.RoutingKey)
			require.Equal(t, "worker.replies", m.ReplyTo)
			require.Equal(t, tc.typ, m.Type)
			env2, payload, err := events.Decode(m.Body)
			require.NoError(t, err)
			require.Equal(t, m.ID, env2.ID)
			require.Equal(t, ref.WorkflowID, env2.CorrelationID)
			require.Equal(t, tc.typ, env2.Type)
			require.NoError(t, payload.Validate())
		})
	}
}

func TestLedgerCommandPublishFailureIsRetryable(t *testing.T) {
	pub := &fakePublisher{err: errors.New("amqp: connection lost")}
	a := newTestActivities(t, pub, &fakeCompleter{})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.Deposit, LedgerCommand{Step: "deposit", AccountID: "acc-2", Amount: 1, Currency: "EUR", TransferID: "t-1"})
	require.ErrorContains(t, err, "connection lost")
	require.NotErrorIs(t, err, activity.ErrResultPending)
	_, ok := RejectionReason(err)
	require.False(t, ok)
}

func TestPublishTransferEvent(t *testing.T) {
	pub := &fakePublisher{}
	a := newTestActivities(t, pub, &fakeCompleter{})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	ev := TransferEvent{Step: "publish-outcome", Type: events.TypeTransferFailed, TransferID: "t-1", SourceAccountID: "a", TargetAccountID: "b", Amount: 10, Currency: "EUR", Reason: events.ReasonAccountClosed}
	_, err := env.ExecuteActivity(a.PublishTransferEvent, ev)
	require.NoError(t, err)
	require.Len(t, pub.msgs, 1)
	m := pub.msgs[0]
	require.Equal(t, "sagas.events", m.Exchange)
	require.Equal(t, events.TypeTransferFailed, m.RoutingKey)
	_, got, err := events.DecodeAs[events.TransferFailed](m.Body)
	require.NoError(t, err)
	require.Equal(t, events.ReasonAccountClosed, got.Reason)
	require.Equal(t, events.Money{Amount: 10, Currency: "EUR"}, got.Amount)

	_, err = env.ExecuteActivity(a.PublishTransferEvent, TransferEvent{Step: "x", Type: "transfer.lost"})
	require.ErrorContains(t, err, "unexpected type")
}

func TestPublishTransferEventIDIsDeterministic(t *testing.T) {
	pub := &fakePublisher{}
	a := newTestActivities(t, pub, &fakeCompleter{})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	ev := TransferEvent{Step: "publish-outcome", Type: events.TypeTransferCompleted, TransferID: "t-1", SourceAccountID: "a", TargetAccountID: "b", Amount: 10, Currency: "EUR"}
	for range 2 {
		_, err := env.ExecuteActivity(a.PublishTransferEvent, ev)
		require.NoError(t, err)
	}
	require.Len(t, pub.msgs, 2)
	require.Equal(t, pub.msgs[0].ID, pub.msgs[1].ID)
	require.NotEmpty(t, pub.msgs[0].ID)
}

// TestCommandWithoutStepIsInvalid: without a step there is no command id,
// and retrying the same input cannot mend that, so every service's
// activities fail the same way, non-retryable.
func TestCommandWithoutStepIsInvalid(t *testing.T) {
	tests := []struct {
		name string
		run  func(a *Activities) any
		in   any
	}{
		{"ledger", func(a *Activities) any { return a.Withdraw }, LedgerCommand{AccountID: "acc-1", Amount: 5, Currency: "EUR", TransferID: "t-1"}},
		{"inventory", func(a *Activities) any { return a.CommitInventory }, InventoryCommand{ReservationID: "r-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			a := newTestActivities(t, pub, &fakeCompleter{})
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			_, err := env.ExecuteActivity(tc.run(a), tc.in)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.Equal(t, ErrTypeInvalidCommand, appErr.Type())
			require.True(t, appErr.NonRetryable())
			require.ErrorContains(t, err, "step is required")
			require.Empty(t, pub.msgs, "nothing is sent")
		})
	}
}

func TestSagaEventsGoToTheConfiguredExchange(t *testing.T) {
	tests := []struct {
		name    string
		publish func(a *Activities) (any, any)
		typ     string
	}{
		{"transfer outcome", func(a *Activities) (any, any) {
			return a.PublishTransferEvent, TransferEvent{Step: "publish-outcome", Type: events.TypeTransferCompleted, TransferID: "t-1",
				SourceAccountID: "a", TargetAccountID: "b", Amount: 10, Currency: "EUR"}
		}, events.TypeTransferCompleted},
		{"order outcome", func(a *Activities) (any, any) {
			return a.PublishOrderEvent, OrderEvent{Step: "confirm", Type: events.TypeOrderConfirmed, OrderID: "o-1"}
		}, events.TypeOrderConfirmed},
		{"reservation failure", func(a *Activities) (any, any) {
			return a.PublishReservationFailed, ReservationFailedEvent{Step: "failed", ReservationID: "r-1", Reason: events.ReasonInsufficientStock}
		}, events.TypeInventoryReservationFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			a, err := New(Config{ReplyQueue: "worker.replies", Exchange: "tenant-a.events"}, pub, &fakeCompleter{}, nil)
			require.NoError(t, err)
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			fn, input := tt.publish(a)
			_, err = env.ExecuteActivity(fn, input)
			require.NoError(t, err)
			require.Len(t, pub.msgs, 1)
			require.Equal(t, "tenant-a.events", pub.msgs[0].Exchange)
			require.Equal(t, tt.typ, pub.msgs[0].RoutingKey)
		})
	}
}
