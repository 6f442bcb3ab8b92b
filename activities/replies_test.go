package activities

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
)

type completion struct {
	ref    ActivityRef
	result any
	err    error
}

// fakeCompleter records completions and answers with err.
type fakeCompleter struct {
	mu    sync.Mutex
	calls []completion
	err   error
}

func (f *fakeCompleter) CompleteActivityByID(_ context.Context, ns, wf, run, act string, result any, err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, completion{ref: ActivityRef{Namespace: ns, WorkflowID: wf, RunID: run, ActivityID: act}, result: result, err: err})
	return f.err
}

// fakePublisher records published messages and answers with err.
type fakePublisher struct {
	mu   sync.Mutex
	msgs []amqp.Message
	err  error
}

func (f *fakePublisher) Publish(_ context.Context, m amqp.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, m)
	return f.err
}

var testRef = ActivityRef{Namespace: "default", WorkflowID: "transfer-t-1", RunID: "run-1", ActivityID: "5"}

func replyDelivery(t *testing.T, r events.Reply, corr string) amqp.Delivery {
	t.Helper()
	env, err := events.New(events.TypeCommandReplied, "ledger", r)
	require.NoError(t, err)
	body, err := env.Encode()
	require.NoError(t, err)
	return amqp.Delivery{Message: amqp.Message{ID: env.ID, CorrelationID: corr, Body: body}, Queue: "worker.replies", Attempt: 1}
}

func newTestActivities(t *testing.T, p Publisher, c ActivityCompleter) *Activities {
	t.Helper()
	a, err := New(Config{ReplyQueue: "worker.replies"}, p, c, nil)
	require.NoError(t, err)
	return a
}

func TestHandleReply(t *testing.T) {
	cmdID := events.DeterministicID("transfer-t-1", "withdraw")
	accepted := events.Reply{CommandID: cmdID, CommandType: events.CmdLedgerWithdraw, Status: events.ReplyAccepted, Result: []byte(`{"balance":100}`)}
	rejected := events.Reply{CommandID: cmdID, CommandType: events.CmdLedgerWithdraw, Status: events.ReplyRejected, Reason: events.ReasonInsufficientFunds, Message: "balance 10 EUR"}

	tests := []struct {
		name          string
		delivery      func(t *testing.T) amqp.Delivery
		completeErr   error
		wantHandleErr func(t *testing.T, err error)
		check         func(t *testing.T, c completion)
	}{
		{
			name:     "acceptance completes with the result",
			delivery: func(t *testing.T) amqp.Delivery { return replyDelivery(t, accepted, testRef.String()) },
			check: func(t *testing.T, c completion) {
				require.NoError(t, c.err)
				require.Equal(t, CommandResult{CommandID: cmdID, CommandType: events.CmdLedgerWithdraw, Result: []byte(`{"balance":100}`)}, c.result)
			},
		},
		{
			name:     "rejection completes with a named non-retryable error",
			delivery: func(t *testing.T) amqp.Delivery { return replyDelivery(t, rejected, testRef.String()) },
			check: func(t *testing.T, c completion) {
				var appErr *temporal.ApplicationError
				require.ErrorAs(t, c.err, &appErr)
				require.Equal(t, ErrTypeInsufficientFunds, appErr.Type())
				require.True(t, appErr.NonRetryable())
				require.Contains(t, appErr.Error(), "balance 10 EUR")
				reason, ok := RejectionReason(c.err)
				require.True(t, ok)
				require.Equal(t, events.ReasonInsufficientFunds, reason)
				require.Nil(t, c.result)
			},
		},
		{
			name:        "stale reply is acknowledged",
			delivery:    func(t *testing.T) amqp.Delivery { return replyDelivery(t, accepted, testRef.String()) },
			completeErr: serviceerror.NewNotFound("activity not found"),
		},
		{
			name:        "Temporal unreachable is retried until it takes the reply",
			delivery:    func(t *testing.T) amqp.Delivery { return replyDelivery(t, accepted, testRef.String()) },
			completeErr: serviceerror.NewUnavailable("frontend down"),
			wantHandleErr: func(t *testing.T, err error) {
				require.ErrorContains(t, err, "frontend down")
				require.True(t, amqp.IsUnavailable(err), "retried without an attempt limit: %v", err)
				require.False(t, amqp.IsPermanent(err))
			},
		},
		{
			name:        "other completion errors are retried a bounded number of times",
			delivery:    func(t *testing.T) amqp.Delivery { return replyDelivery(t, accepted, testRef.String()) },
			completeErr: serviceerror.NewInternal("server bug"),
			wantHandleErr: func(t *testing.T, err error) {
				require.ErrorContains(t, err, "server bug")
				require.False(t, amqp.IsUnavailable(err))
				require.False(t, amqp.IsPermanent(err))
			},
		},
		{
			name: "undecodable reply is dead-lettered",
			delivery: func(*testing.T) amqp.Delivery {
				return amqp.Delivery{Message: amqp.Message{ID: "m", CorrelationID: testRef.String(), Body: []byte("{")}}
			},
			wantHandleErr: func(t *testing.T, err error) { require.True(t, amqp.IsPermanent(err)) },
		},
		{
			name:          "reply without an activity reference is dead-lettered",
			delivery:      func(t *testing.T) amqp.Delivery { return replyDelivery(t, accepted, "wf=x") },
			wantHandleErr: func(t *testing.T, err error) { require.True(t, amqp.IsPermanent(err)) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeCompleter{err: tc.completeErr}
			a := newTestActivities(t, &fakePublisher{}, c)
			err := a.HandleReply(context.Background(), tc.delivery(t))
			if tc.wantHandleErr != nil {
				tc.wantHandleErr(t, err)
			} else {
				require.NoError(t, err)
				require.Len(t, c.calls, 1)
				require.Equal(t, testRef, c.calls[0].ref)
			}
			if tc.check != nil {
				require.Len(t, c.calls, 1)
				tc.check(t, c.calls[0])
			}
		})
	}
}

func TestRejectionType(t *testing.T) {
	tests := []struct{ reason, want string }{
		{events.ReasonInsufficientFunds, ErrTypeInsufficientFunds},
		{events.ReasonAccountClosed, ErrTypeAccountClosed},
		{events.ReasonAccountFrozen, ErrTypeAccountFrozen},
		{events.ReasonUnknownAccount, ErrTypeUnknownAccount},
		{events.ReasonCurrencyMismatch, ErrTypeCurrencyMismatch},
		{events.ReasonInvalidAmount, ErrTypeInvalidAmount},
		{events.ReasonUnknownSKU, ErrTypeUnknownSKU},
		{events.ReasonInsufficientStock, ErrTypeInsufficientStock},
		{events.ReasonUnknownReservation, ErrTypeUnknownReservation},
		{events.ReasonInvalidQuantity, ErrTypeInvalidQuantity},
		{events.ReasonReservationNotHeld, ErrTypeReservationNotHeld},
		{"", "Rejected"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, RejectionType(tc.reason), tc.reason)
	}
}

func TestActivityRefRoundTrip(t *testing.T) {
	ref := ActivityRef{Namespace: "default", WorkflowID: "transfer-a&b=c/d", RunID: "r", ActivityID: "7"}
	got, err := ParseActivityRef(ref.String())
	require.NoError(t, err)
	require.Equal(t, ref, got)
	_, err = ParseActivityRef("ns=default")
	require.Error(t, err)
}

func TestRejectionReasonIgnoresOtherErrors(t *testing.T) {
	for _, err := range []error{
		nil,
		errors.New("boom"),
		temporal.NewApplicationError("retryable", ErrTypeAccountClosed, events.ReasonAccountClosed),
		temporal.NewNonRetryableApplicationError("no details", "X", nil),
	} {
		_, ok := RejectionReason(err)
		require.False(t, ok, "%v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	require.ErrorContains(t, Config{}.Validate(), "ReplyQueue")
	require.NoError(t, Config{ReplyQueue: "q"}.Validate())
	_, err := New(Config{ReplyQueue: "q"}, nil, nil, nil)
	require.Error(t, err)
}
