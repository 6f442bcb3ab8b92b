package activities

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// fakeRequester records requests and answers each with reply (encoded as
// a service would) or err.
type fakeRequester struct {
	t     *testing.T
	mu    sync.Mutex
	sent  []amqp.Message
	queue []string
	reply events.Reply
	err   error
}

func (f *fakeRequester) Request(_ context.Context, queue string, m amqp.Message) (amqp.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	f.queue = append(f.queue, queue)
	if f.err != nil {
		return amqp.Delivery{}, f.err
	}
	return replyDelivery(f.t, f.reply, "corr"), nil
}

// TestLocalCommandWaitsForItsReply: run as a local activity, a command
// step sends its command through the requester, with the same id a
// regular attempt sends, and ends with the reply itself: a result naming
// the step and its input (the history does not record a local activity's
// input), or the rejection; it never asks Temporal to complete it.
func TestLocalCommandWaitsForItsReply(t *testing.T) {
	cmd := LedgerCommand{Step: contract.StepWithdraw, AccountID: "acc-1", Amount: 500, Currency: "EUR", TransferID: "t-1"}
	accepted := events.Reply{CommandID: "c-1", CommandType: events.CmdLedgerWithdraw, Status: events.ReplyAccepted, Result: []byte(`{"balance":100}`)}
	rejected := events.Reply{CommandID: "c-1", CommandType: events.CmdLedgerWithdraw, Status: events.ReplyRejected, Reason: events.ReasonInsufficientFunds}

	pub, completer := &fakePublisher{}, &fakeCompleter{}
	req := &fakeRequester{t: t, reply: accepted}
	a := WithRequester(newTestActivities(t, pub, completer), req)

	res, err := runLocally(t, a, a.Withdraw, cmd)
	require.NoError(t, err)
	require.Equal(t, contract.StepWithdraw, res.Step)
	require.JSONEq(t, `{"balance":100}`, string(res.Result))
	var in LedgerCommand
	require.NoError(t, json.Unmarshal(res.Input, &in))
	require.Equal(t, cmd, in)

	require.Len(t, req.sent, 1)
	m := req.sent[0]
	require.Equal(t, contract.LedgerQueue, req.queue[0])
	require.Equal(t, events.CmdLedgerWithdraw, m.Type)
	require.Empty(t, m.ReplyTo, "the requester sets its own reply queue")
	env2, _, err := events.Decode(m.Body)
	require.NoError(t, err)
	require.Equal(t, events.DeterministicID(env2.CorrelationID, contract.StepWithdraw), m.ID, "the id a regular attempt sends")

	req.reply = rejected
	_, err = runLocally(t, a, a.Withdraw, cmd)
	reason, ok := RejectionReason(err)
	require.True(t, ok, "a rejection: %v", err)
	require.Equal(t, events.ReasonInsufficientFunds, reason)

	require.Empty(t, pub.msgs, "nothing went to the shared reply queue's path")
	require.Empty(t, completer.calls, "a local activity completes itself")
}

// TestLocalCommandWithoutReplyIsRetried: no reply in time, or no
// requester at all, fails the attempt with a retryable error, so the
// workflow's retry (and then its regular activity) takes over.
func TestLocalCommandWithoutReplyIsRetried(t *testing.T) {
	cmd := InventoryCommand{Step: contract.StepCommitInventory, ReservationID: "o-1"}
	for name, a := range map[string]*Activities{
		"no reply":     WithRequester(newTestActivities(t, &fakePublisher{}, &fakeCompleter{}), &fakeRequester{t: t, err: amqp.ErrRequestTimeout}),
		"no requester": newTestActivities(t, &fakePublisher{}, &fakeCompleter{}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := runLocally(t, a, a.CommitInventory, cmd)
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.False(t, errors.As(err, &appErr) && appErr.NonRetryable(), "retryable: %v", err)
		})
	}
}

// runLocally runs activity as a workflow's local activity, once, and
// returns its outcome.
func runLocally(t *testing.T, a *Activities, activity, input any) (CommandResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	env.ExecuteWorkflow(func(ctx workflow.Context) (CommandResult, error) {
		ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: time.Second,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		var res CommandResult
		err := workflow.ExecuteLocalActivity(ctx, activity, input).Get(ctx, &res)
		return res, err
	})
	require.True(t, env.IsWorkflowCompleted())
	if err := env.GetWorkflowError(); err != nil {
		return CommandResult{}, err
	}
	var res CommandResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, nil
}
