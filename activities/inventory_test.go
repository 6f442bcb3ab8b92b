package activities

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

func TestInventoryCommandsArePublishedWithDeterministicIDs(t *testing.T) {
	lines := []events.StockLine{{SKU: "sku-a", Quantity: 2}}
	tests := []struct {
		name string
		run  func(a *Activities) any
		cmd  InventoryCommand
		typ  string
		want events.Payload
	}{
		{"reserve", func(a *Activities) any { return a.ReserveInventory },
			InventoryCommand{Step: "reserve", ReservationID: "r-1", OrderID: "o-1", Lines: lines},
			events.CmdInventoryReserve, events.InventoryReserve{ReservationID: "r-1", OrderID: "o-1", Lines: lines}},
		{"release", func(a *Activities) any { return a.ReleaseInventory },
			InventoryCommand{Step: "release", ReservationID: "r-1", Reason: events.ReleaseReasonExpired},
			events.CmdInventoryRelease, events.InventoryRelease{ReservationID: "r-1", Reason: events.ReleaseReasonExpired}},
		{"commit", func(a *Activities) any { return a.CommitInventory },
			InventoryCommand{Step: "commit", ReservationID: "r-1"},
			events.CmdInventoryCommit, events.InventoryCommit{ReservationID: "r-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			a := newTestActivities(t, pub, &fakeCompleter{})
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			_, err := env.ExecuteActivity(tc.run(a), tc.cmd)
			require.ErrorIs(t, err, activity.ErrResultPending)
			_, err = env.ExecuteActivity(tc.run(a), tc.cmd) // a retry resends the same id
			require.ErrorIs(t, err, activity.ErrResultPending)

			require.Len(t, pub.msgs, 2)
			m := pub.msgs[0]
			ref, err := ParseActivityRef(m.CorrelationID)
			require.NoError(t, err)
			require.Equal(t, events.DeterministicID(ref.WorkflowID, tc.cmd.Step), m.ID)
			require.Equal(t, m.ID, pub.msgs[1].ID)
			require.Equal(t, contract.InventoryQueue, m.RoutingKey)
			require.Equal(t, "worker.replies", m.ReplyTo)
			require.Equal(t, tc.typ, m.Type)
			got, payload, err := events.Decode(m.Body)
			require.NoError(t, err)
			require.Equal(t, "r-1", got.Subject)
			require.Equal(t, tc.want, payload)
		})
	}
}

func TestInventoryCommandInvalidIsNotRetried(t *testing.T) {
	pub := &fakePublisher{}
	a := newTestActivities(t, pub, &fakeCompleter{})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.ReleaseInventory, InventoryCommand{Step: "release", ReservationID: "r-1", Reason: "lost"})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "got %v", err)
	require.True(t, appErr.NonRetryable())
	require.Empty(t, pub.msgs)
}

func TestReservationRejection(t *testing.T) {
	reply := events.Reply{CommandID: "c-1", CommandType: events.CmdInventoryReserve, Status: events.ReplyRejected, Reason: events.ReasonInsufficientStock}
	withResult := func(result string) error {
		return temporal.NewNonRetryableApplicationError("rejected", RejectionType(reply.Reason), nil, reply.Reason, json.RawMessage(result))
	}
	want := []events.StockLine{{SKU: "sku-b", Quantity: 3}}
	tests := []struct {
		name   string
		err    error
		ok     bool
		reason string
		lines  []events.StockLine
	}{
		{"reason only, as RejectionError reports it", RejectionError(reply), true, events.ReasonInsufficientStock, nil},
		{"failed_lines object", withResult(`{"failed_lines":[{"sku":"sku-b","quantity":3}]}`), true, events.ReasonInsufficientStock, want},
		{"lines object", withResult(`{"lines":[{"sku":"sku-b","quantity":3}]}`), true, events.ReasonInsufficientStock, want},
		{"bare array", withResult(`[{"sku":"sku-b","quantity":3}]`), true, events.ReasonInsufficientStock, want},
		{"inventory service's result", withResult(`{"failed_lines":[{"sku":"sku-b","requested":3,"available":1,"reason":"insufficient_stock"}]}`), true, events.ReasonInsufficientStock, want},
		{"line without quantity dropped", withResult(`{"failed_lines":[{"sku":"sku-b"}]}`), true, events.ReasonInsufficientStock, nil},
		{"unrecognised result", withResult(`"oops"`), true, events.ReasonInsufficientStock, nil},
		{"not a rejection", errors.New("timeout"), false, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reason, lines, ok := ReservationRejection(tc.err)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.reason, reason)
			require.Equal(t, tc.lines, lines)
		})
	}
}

// TestSagaEventsArePublishedAlike: every event a saga publishes itself goes
// through one path: its source and correlation id are the workflow, its
// subject the saga's entity, its id derived from the step; without a step it
// is refused, not published under an id every step would share.
func TestSagaEventsArePublishedAlike(t *testing.T) {
	tests := []struct {
		name    string
		run     func(a *Activities) any
		arg     any
		typ     string
		step    string
		want    events.Payload
		subject string
		noStep  any
	}{
		{"reservation failed", func(a *Activities) any { return a.PublishReservationFailed },
			ReservationFailedEvent{Step: "publish-reservation-failed", ReservationID: "r-1", OrderID: "o-1", Reason: events.ReasonUnknownSKU, FailedLines: []events.StockLine{{SKU: "x", Quantity: 1}}},
			events.TypeInventoryReservationFailed, "publish-reservation-failed",
			events.InventoryReservationFailed{ReservationID: "r-1", OrderID: "o-1", Reason: events.ReasonUnknownSKU, FailedLines: []events.StockLine{{SKU: "x", Quantity: 1}}},
			"r-1", ReservationFailedEvent{ReservationID: "r-1", OrderID: "o-1", Reason: events.ReasonUnknownSKU, FailedLines: []events.StockLine{{SKU: "x", Quantity: 1}}}},
		{"order confirmed", func(a *Activities) any { return a.PublishOrderEvent },
			OrderEvent{Step: "publish-outcome", Type: events.TypeOrderConfirmed, OrderID: "o-1"},
			events.TypeOrderConfirmed, "publish-outcome", events.OrderConfirmed{OrderID: "o-1"},
			"o-1", OrderEvent{Type: events.TypeOrderConfirmed, OrderID: "o-1"}},
		{"order cancelled", func(a *Activities) any { return a.PublishOrderEvent },
			OrderEvent{Step: "publish-outcome", Type: events.TypeOrderCancelled, OrderID: "o-1", Reason: "insufficient_funds", FailedStep: "payment"},
			events.TypeOrderCancelled, "publish-outcome", events.OrderCancelled{OrderID: "o-1", Reason: "insufficient_funds", FailedStep: "payment"},
			"o-1", OrderEvent{Type: events.TypeOrderCancelled, OrderID: "o-1", Reason: "insufficient_funds"}},
		{"transfer completed", func(a *Activities) any { return a.PublishTransferEvent },
			TransferEvent{Step: "publish-outcome", Type: events.TypeTransferCompleted, TransferID: "t-1", SourceAccountID: "a", TargetAccountID: "b", Amount: 10, Currency: "EUR"},
			events.TypeTransferCompleted, "publish-outcome",
			events.TransferCompleted{TransferID: "t-1", SourceAccountID: "a", TargetAccountID: "b", Amount: events.Money{Amount: 10, Currency: "EUR"}},
			"t-1", TransferEvent{Type: events.TypeTransferCompleted, TransferID: "t-1", SourceAccountID: "a", TargetAccountID: "b", Amount: 10, Currency: "EUR"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			a := newTestActivities(t, pub, &fakeCompleter{})
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			_, err := env.ExecuteActivity(tc.run(a), tc.arg)
			require.NoError(t, err)
			_, err = env.ExecuteActivity(tc.run(a), tc.arg)
			require.NoError(t, err)
			require.Len(t, pub.msgs, 2)
			m := pub.msgs[0]
			require.Equal(t, m.ID, pub.msgs[1].ID, "a retried publish carries the same id")
			require.Equal(t, tc.typ, m.RoutingKey)
			got, payload, err := events.Decode(m.Body)
			require.NoError(t, err)
			require.Equal(t, events.DeterministicID(got.CorrelationID, tc.step), got.ID)
			require.Equal(t, "workflow/"+got.CorrelationID, got.Source)
			require.Equal(t, tc.subject, got.Subject)
			require.Equal(t, tc.want, payload)

			_, err = env.ExecuteActivity(tc.run(a), tc.noStep)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "%v", err)
			require.True(t, appErr.NonRetryable())
			require.ErrorContains(t, err, "step is required")
			require.Len(t, pub.msgs, 2, "nothing published without a step")
		})
	}
}

func TestPublishOrderEventRejectsUnknownType(t *testing.T) {
	pub := &fakePublisher{}
	a := newTestActivities(t, pub, &fakeCompleter{})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.PublishOrderEvent, OrderEvent{Step: "publish-outcome", Type: events.TypeOrderPlaced, OrderID: "o-1"})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.True(t, appErr.NonRetryable())
	require.Empty(t, pub.msgs)
}

func TestReservationRejectionCarriesFailingLinesFromTheReply(t *testing.T) {
	err := RejectionError(events.Reply{
		CommandID:   "c-1",
		CommandType: events.CmdInventoryReserve,
		Status:      events.ReplyRejected,
		Reason:      events.ReasonInsufficientStock,
		Result:      []byte(`{"failed_lines":[{"sku":"apple","requested":5,"available":2}]}`),
	})
	reason, lines, ok := ReservationRejection(err)
	require.True(t, ok)
	require.Equal(t, events.ReasonInsufficientStock, reason)
	require.Equal(t, []events.StockLine{{SKU: "apple", Quantity: 5}}, lines)
}
