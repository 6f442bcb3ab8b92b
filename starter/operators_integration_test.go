package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/workflows"
)

// operatorSagaType is the test saga: one step whose compensation fails while
// the test says so, then either completes or compensates.
const operatorSagaType = "OperatorTestSaga"

// waitingSagaType is a workflow whose one activity waits for a reply that
// never comes (async completion), as a saga step waits for its command's
// reply.
const waitingSagaType = "WaitingTestSaga"

type operatorTestActivities struct{ broken *atomic.Bool }

// Undo fails for good while broken is set.
func (o *operatorTestActivities) Undo(context.Context) error {
	if o.broken.Load() {
		return temporal.NewNonRetryableApplicationError("undo refused", "Refused", nil)
	}
	return nil
}

// Await completes only from outside, like a command's reply.
func (o *operatorTestActivities) Await(context.Context) error { return activity.ErrResultPending }

func operatorTestSaga(ctx workflow.Context, fail bool) error {
	var a *operatorTestActivities
	s, err := workflows.NewSaga(ctx, workflows.SagaOptions{})
	if err != nil {
		return err
	}
	undo := func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		return workflow.ExecuteActivity(ctx, a.Undo).Get(ctx, nil)
	}
	if err := s.Step(ctx, "reserve", func(workflow.Context) error { return nil }, undo); err != nil {
		return err
	}
	if !fail {
		return s.Complete(ctx)
	}
	cause := errors.New("charge failed")
	if err := s.Compensate(ctx, cause); err != nil {
		return err
	}
	return temporal.NewNonRetryableApplicationError(cause.Error(), "ChargeFailed", nil)
}

func waitingTestSaga(ctx workflow.Context) error {
	var a *operatorTestActivities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Hour})
	return workflow.ExecuteActivity(ctx, a.Await).Get(ctx, nil)
}

// operatorEnv is a worker with the test sagas on the shared dev server and a
// RabbitMQ virtual host of the test's own.
type operatorEnv struct {
	tc      client.Client
	queue   string
	amqpURL string
	broken  *atomic.Bool
	args    []string
}

func startOperatorEnv(t *testing.T) *operatorEnv {
	t.Helper()
	e := &operatorEnv{broken: &atomic.Bool{}}
	e.broken.Store(true)
	e.tc, e.queue = temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflowWithOptions(operatorTestSaga, workflow.RegisterOptions{Name: operatorSagaType})
		w.RegisterWorkflowWithOptions(waitingTestSaga, workflow.RegisterOptions{Name: waitingSagaType})
		w.RegisterActivity(&operatorTestActivities{broken: e.broken})
	})
	e.amqpURL = scratchVHost(t)
	e.args = []string{"--address", temporaltest.Server(t).FrontendHostPort(), "--namespace", "default",
		"--amqp-url", e.amqpURL, "--timeout", "60s"}
	return e
}

// scratchVHost creates a RabbitMQ virtual host for the test, deleted at its
// end, and returns its URL.
func scratchVHost(t *testing.T) string {
	t.Helper()
	base := testenv.AMQPURL(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl", "install RabbitMQ's CLI tools and put rabbitmqctl on PATH")
	}
	vhost := "sagaflow-operators-" + uuid.NewString()[:8]
	u, err := url.Parse(base)
	require.NoError(t, err)
	for _, args := range [][]string{{"add_vhost", vhost}, {"set_permissions", "-p", vhost, u.User.Username(), ".*", ".*", ".*"}} {
		out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
		require.NoError(t, err, "rabbitmqctl %v: %s", args, out)
	}
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "delete_vhost", vhost).Run() })
	u.Path = "/" + vhost
	return u.String()
}

func (e *operatorEnv) cli(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	code, out, errOut := runCLI(t, nil, append(args, e.args...)...)
	require.Equal(t, want, code, "starter %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	return out, errOut
}

func (e *operatorEnv) start(t *testing.T, typ, id string, args ...any) client.WorkflowRun {
	t.Helper()
	run, err := e.tc.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: id, TaskQueue: e.queue}, typ, args...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.tc.TerminateWorkflow(context.Background(), id, "", "test over") })
	return run
}

// awaitSagaStatus polls the saga's search attribute until it is want.
func (e *operatorEnv) awaitSagaStatus(t *testing.T, id string, want contract.SagaStatus) {
	t.Helper()
	var got string
	require.Eventually(t, func() bool {
		desc, err := e.tc.DescribeWorkflowExecution(t.Context(), id, "")
		if err != nil {
			return false
		}
		got = sagaStatusOf(desc)
		return got == string(want)
	}, 30*time.Second, 100*time.Millisecond, "saga %s never reached %s (last %q)", id, want, got)
}

func TestOperatorActionsByIDAndByQuery(t *testing.T) {
	e := startOperatorEnv(t)
	suffix := strings.ToLower(newID())
	parked := []string{"op1-" + suffix, "op2-" + suffix, "op3-" + suffix}
	for _, id := range parked {
		e.start(t, operatorSagaType, id, true)
	}
	done := "op-done-" + suffix
	require.NoError(t, e.start(t, operatorSagaType, done, false).Get(t.Context(), nil))
	for _, id := range parked {
		e.awaitSagaStatus(t, id, contract.StatusCompensationFailed)
	}
	query := `SagaStatus="CompensationFailed" AND WorkflowType="` + operatorSagaType + `" AND TaskQueue="` + e.queue + `"`

	// Bad input: no reason, no target, an unknown saga, a query that does
	// not parse, a saga that waits for nobody.
	_, errOut := e.cli(t, exitUsage, "resolve", parked[0])
	require.Contains(t, errOut, "starter: --reason is required")
	_, errOut = e.cli(t, exitUsage, "retry-compensation")
	require.Contains(t, errOut, "give a saga id or --query")
	_, errOut = e.cli(t, exitFailure, "resolve", "nosuch-"+suffix, "--reason", "x")
	require.Equal(t, "starter: no workflow nosuch-"+suffix+" in this namespace\n", errOut)
	_, errOut = e.cli(t, exitUsage, "resolve", "--query", "SagaStatus = AND", "--reason", "x")
	require.Contains(t, errOut, `starter: --query "SagaStatus = AND" does not parse`)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	_, errOut = e.cli(t, exitFailure, "resolve", done, "--reason", "x")
	require.Contains(t, errOut, done+": not waiting for an operator (status Completed, saga Completed)")

	// Visibility is eventually consistent: wait until the query sees all three.
	require.Eventually(t, func() bool {
		code, out, _ := runCLI(t, nil, append([]string{"resolve", "--query", query, "--reason", "x", "--dry-run", "--json"}, e.args...)...)
		var rep operatorReport
		return code == exitOK && json.Unmarshal([]byte(out), &rep) == nil && rep.Acted == 3
	}, 30*time.Second, 200*time.Millisecond)

	// A dry run changes nothing.
	out, _ := e.cli(t, exitOK, "resolve", "--query", query, "--reason", "x", "--dry-run")
	require.Contains(t, out, "would resolve  "+parked[0])
	require.Contains(t, out, "3 saga(s): 3 would resolve, 0 skipped, 0 failed")
	for _, id := range parked {
		e.awaitSagaStatus(t, id, contract.StatusCompensationFailed)
	}

	// One saga by id: the compensation runs again, now succeeding.
	e.broken.Store(false)
	out, _ = e.cli(t, exitOK, "retry-compensation", parked[0], "--operator", "alice", "--reason", "the ledger is back")
	require.Contains(t, out, "retrying       "+parked[0]+"  "+operatorSagaType+" signalled retry-compensation by alice: the ledger is back")
	e.awaitSagaStatus(t, parked[0], contract.StatusCompensated)

	// The others by query, with a progress line per tenth on a pipe; the
	// first may still be listed by visibility, and is skipped.
	code, out, errOut := runCLI(t, nil, append([]string{"resolve", "--query", query, "--reason", "refunded by hand", "--operator", "bob", "--json"}, e.args...)...)
	require.Equal(t, exitOK, code, errOut)
	var rep operatorReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Equal(t, "resolve", rep.Action)
	require.Equal(t, "bob", rep.Operator)
	results := map[string]string{}
	for _, r := range rep.Sagas {
		results[r.WorkflowID] = r.Result
	}
	require.Equal(t, "resolved", results[parked[1]])
	require.Equal(t, "resolved", results[parked[2]])
	if r, ok := results[parked[0]]; ok {
		require.Equal(t, "skipped", r)
	}
	require.Equal(t, 2, rep.Acted)
	require.Contains(t, errOut, "/"+strconv.Itoa(len(rep.Sagas))+" sagas")
	for _, id := range parked[1:] {
		e.awaitSagaStatus(t, id, contract.StatusResolved)
	}

	// The audit trail names who acted and why.
	out, _ = e.cli(t, exitOK, "history", parked[1])
	require.Contains(t, out, "operator      resolve by bob: refunded by hand")
	out, _ = e.cli(t, exitOK, "history", parked[0])
	require.Contains(t, out, "operator      retry-compensation by alice: the ledger is back")
	requireInOrder(t, out, "status        CompensationFailed", "operator      retry-compensation", "status        Compensated")
}

// TestDeadLettersKnowTheirSaga puts messages of sagas in every state into a
// consumer's dead letters and checks what list shows, what redrive sends
// back or skips (and why), the redrive log in the headers, --force, and
// purge's confirmation.
func TestDeadLettersKnowTheirSaga(t *testing.T) {
	e := startOperatorEnv(t)
	suffix := strings.ToLower(newID())
	waiting := "wait-" + suffix
	wrun := e.start(t, waitingSagaType, waiting)
	done := "done-" + suffix
	require.NoError(t, e.start(t, operatorSagaType, done, false).Get(t.Context(), nil))
	parked := "parked-" + suffix
	e.start(t, operatorSagaType, parked, true)
	e.awaitSagaStatus(t, parked, contract.StatusCompensationFailed)
	var pendingID string
	require.Eventually(t, func() bool {
		desc, err := e.tc.DescribeWorkflowExecution(t.Context(), waiting, "")
		if err != nil || len(desc.GetPendingActivities()) == 0 {
			return false
		}
		pendingID = desc.GetPendingActivities()[0].GetActivityId()
		return true
	}, 30*time.Second, 100*time.Millisecond)

	// The consumer's queue and its dead letters, filled by hand as a
	// consumer would have.
	raw, err := amqp091.Dial(e.amqpURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	ch, err := raw.Channel()
	require.NoError(t, err)
	consumer := "ledger-test"
	for _, q := range []string{consumer, consumer + ".dlq"} {
		_, err := ch.QueueDeclare(q, true, false, false, false, nil)
		require.NoError(t, err)
	}
	ref := func(wf, run, act string) string {
		return activities.ActivityRef{Namespace: "default", WorkflowID: wf, RunID: run, ActivityID: act}.String()
	}
	body := func(typ, corr, data string) []byte {
		return []byte(`{"specversion":"1.0","id":"x","source":"test","type":"` + typ + `","correlationid":"` + corr +
			`","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","dataversion":1,"data":` + data + `}`)
	}
	letters := []amqp091.Publishing{
		{MessageId: "cmd-waiting", Type: events.CmdLedgerWithdraw, CorrelationId: ref(waiting, wrun.GetRunID(), pendingID), Body: body(events.CmdLedgerWithdraw, waiting, `{}`)},
		{MessageId: "cmd-done", Type: events.CmdLedgerWithdraw, CorrelationId: ref(done, "", "5"), Body: body(events.CmdLedgerWithdraw, done, `{}`)},
		{MessageId: "cmd-nosaga", Type: events.CmdLedgerRefund, CorrelationId: ref("nosuch-"+suffix, "", "5"), Body: body(events.CmdLedgerRefund, "nosuch", `{}`)},
		{MessageId: "placed-new", Type: events.TypeOrderPlaced, Body: body(events.TypeOrderPlaced, "", `{"order_id":"new-`+suffix+`"}`)},
		{MessageId: "placed-old", Type: events.TypeOrderPlaced, CorrelationId: waiting, Body: body(events.TypeOrderPlaced, waiting, `{}`)},
		{MessageId: "fact", Type: events.TypeFundsWithdrawn, CorrelationId: done, Body: body(events.TypeFundsWithdrawn, done, `{}`)},
		{MessageId: "parked-cmd", Type: events.CmdLedgerRefund, CorrelationId: ref(parked, "", "9"), Body: body(events.CmdLedgerRefund, parked, `{}`)},
	}
	for _, p := range letters {
		p.Headers = amqp091.Table{amqp.HeaderLastError: "handler: boom " + p.MessageId, amqp.HeaderAttempts: int32(3)}
		require.NoError(t, ch.PublishWithContext(t.Context(), "", consumer+".dlq", true, false, p))
	}
	depth := func(q string) int {
		info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		require.NoError(t, err)
		return info.Messages
	}
	require.Eventually(t, func() bool { return depth(consumer+".dlq") == len(letters) }, 10*time.Second, 50*time.Millisecond)

	// list: each message beside its saga and the saga's state.
	out, _ := e.cli(t, exitOK, "dead-letters", "list", consumer)
	t.Logf("dead-letters list:\n%s", out)
	require.Regexp(t, `cmd-waiting\s+ledger.withdraw\s+`+waiting+`\s+running`, out)
	require.Regexp(t, `cmd-done\s+ledger.withdraw\s+`+done+`\s+completed`, out)
	require.Regexp(t, `cmd-nosaga\s+ledger.refund\s+nosuch-`+suffix+`\s+not found`, out)
	require.Regexp(t, `placed-new\s+order.placed\s+order-new-`+suffix+`\s+not found`, out)
	require.Regexp(t, `parked-cmd\s+ledger.refund\s+`+parked+`\s+waiting for an operator`, out)
	out, _ = e.cli(t, exitOK, "dead-letters", "list", consumer, "--json")
	var views []deadLetterView
	require.NoError(t, json.Unmarshal([]byte(out), &views))
	require.Len(t, views, len(letters))
	require.Equal(t, messageSaga{WorkflowID: waiting, RunID: wrun.GetRunID(), ActivityID: pendingID}, views[0].Saga)
	require.Equal(t, "running", views[0].SagaState)

	// A dry run says what would happen and changes nothing.
	out, _ = e.cli(t, exitOK, "dead-letters", "redrive", consumer, "--all", "--dry-run")
	t.Logf("redrive --dry-run:\n%s", out)
	require.Regexp(t, `would-send\s+cmd-waiting\s+.*activity `+pendingID+` of `+waiting+` still waits for it`, out)
	require.Regexp(t, `would-skip\s+cmd-done\s+.*no longer waits for it \(saga completed\); --force sends it anyway`, out)
	require.Regexp(t, `would-skip\s+cmd-nosaga\s+.*saga nosuch-`+suffix+` not found`, out)
	require.Regexp(t, `would-send\s+placed-new\s+.*not started yet`, out)
	require.Regexp(t, `would-skip\s+placed-old\s+.*already started`, out)
	require.Regexp(t, `would-send\s+fact\s+.*`+consumer+` has not applied this event`, out)
	require.Regexp(t, `would-skip\s+parked-cmd\s+.*no longer waits for it \(saga waiting for an operator\)`, out)
	require.Contains(t, out, "Would send 3 message(s) back to "+consumer+", would skip 4")
	require.Equal(t, len(letters), depth(consumer+".dlq"))
	require.Equal(t, 0, depth(consumer))

	// The redrive sends only what the sagas can use, published before removed.
	out, _ = e.cli(t, exitOK, "dead-letters", "redrive", consumer, "--all", "--operator", "alice", "--json")
	var rep redriveReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Equal(t, 3, rep.Sent)
	require.Equal(t, 4, rep.Skipped)
	require.Equal(t, "alice", rep.By)
	require.Equal(t, 3, depth(consumer))
	require.Equal(t, 4, depth(consumer+".dlq"))

	// Back in the queue, each carries the record of the redrive; a message
	// that fails again keeps it, so the next look at the dead letters shows it.
	var back amqp091.Delivery
	for range 3 {
		d, ok, err := ch.Get(consumer, false)
		require.NoError(t, err)
		require.True(t, ok)
		log := amqp.RedriveLog(d.Headers)
		require.Len(t, log, 1)
		require.Equal(t, "alice", log[0].By)
		require.Equal(t, rep.Batch, log[0].Batch)
		require.ElementsMatch(t, []string{"cmd-waiting", "placed-new", "fact"}, log[0].Messages)
		if d.MessageId == "cmd-waiting" {
			back = d
		}
	}
	require.NoError(t, ch.PublishWithContext(t.Context(), "", consumer+".dlq", true, false, amqp091.Publishing{
		MessageId: back.MessageId, Type: back.Type, CorrelationId: back.CorrelationId, Headers: back.Headers, Body: back.Body}))
	require.NoError(t, ch.Nack(0, true, false))
	require.Eventually(t, func() bool { return depth(consumer+".dlq") == 5 }, 10*time.Second, 50*time.Millisecond)
	out, _ = e.cli(t, exitOK, "dead-letters", "show", consumer, "cmd-waiting")
	require.Regexp(t, `redriven:\s+.* by alice \(batch `+rep.Batch+`, 3 message\(s\)`, out)

	// --force sends a skipped one anyway; a selection by saga and reason.
	out, _ = e.cli(t, exitOK, "dead-letters", "redrive", consumer, "--saga", done, "--reason", "boom cmd-", "--force")
	require.Regexp(t, `sent\s+cmd-done\s+.*sent with --force`, out)
	require.NotContains(t, out, "placed-old")
	require.Equal(t, 4, depth(consumer+".dlq"))

	// Bad selections are one-line errors.
	_, errOut := e.cli(t, exitUsage, "dead-letters", "redrive", consumer, "--reason", "(")
	require.Contains(t, errOut, `starter: --reason "(": error parsing regexp`)
	_, errOut = e.cli(t, exitUsage, "dead-letters", "redrive", consumer, "--all", "cmd-done")
	require.Contains(t, errOut, "--all takes no message ids")
	_, errOut = e.cli(t, exitFailure, "dead-letters", "list", "no-such-consumer")
	require.Equal(t, "starter: list dead letters of no-such-consumer: queue no-such-consumer.dlq does not exist (is the consumer name right?)\n", errOut)
	_, errOut = e.cli(t, exitFailure, "dead-letters", "redrive", consumer, "missing-id")
	require.Contains(t, errOut, "starter: not in the dead letters of "+consumer+": missing-id")
	_, errOut = e.cli(t, exitFailure, "dead-letters", "redrive", consumer, "--saga", "never-started-"+suffix)
	require.Equal(t, "starter: --saga never-started-"+suffix+": no such saga in this namespace, and none of the dead letters of "+consumer+" belongs to it\n", errOut)
	_, errOut = e.cli(t, exitFailure, "dead-letters", "purge", consumer, "--saga", "never-started-"+suffix, "--yes")
	require.Contains(t, errOut, "starter: --saga never-started-"+suffix+": no such saga")
	_, errOut = e.cli(t, exitFailure, "dead-letters", "redrive", "no-such-consumer", "--all")
	require.Contains(t, errOut, "queue no-such-consumer.dlq does not exist (is the consumer name right?)")
	_, errOut = e.cli(t, exitFailure, "dead-letters", "purge", "no-such-consumer", "--all", "--yes")
	require.Contains(t, errOut, "queue no-such-consumer.dlq does not exist (is the consumer name right?)")
	require.Equal(t, 4, depth(consumer+".dlq"))

	// purge asks first: no answer deletes nothing, nor does "n"; --yes deletes.
	defer func(r io.Reader) { confirmInput = r }(confirmInput)
	confirmInput = strings.NewReader("")
	_, errOut = e.cli(t, exitFailure, "dead-letters", "purge", consumer, "--saga", "nosuch-"+suffix)
	require.Contains(t, errOut, "Delete these 1 dead letter(s) of "+consumer+" for good? [y/N]")
	require.Contains(t, errOut, "starter: purge of "+consumer+" not confirmed: nothing deleted")
	require.Equal(t, 4, depth(consumer+".dlq"))
	confirmInput = strings.NewReader("n\n")
	e.cli(t, exitFailure, "dead-letters", "purge", consumer, "--saga", "nosuch-"+suffix)
	require.Equal(t, 4, depth(consumer+".dlq"))
	out, _ = e.cli(t, exitOK, "dead-letters", "purge", consumer, "--saga", "nosuch-"+suffix, "--dry-run")
	require.Contains(t, out, "Would delete 1 message(s)")
	out, _ = e.cli(t, exitOK, "dead-letters", "purge", consumer, "cmd-nosaga", "--yes")
	require.Contains(t, out, "Deleted 1 message(s) of "+consumer)
	require.Equal(t, 3, depth(consumer+".dlq"))
	confirmInput = strings.NewReader("y\n")
	out, _ = e.cli(t, exitOK, "dead-letters", "purge", consumer, "placed-old")
	require.Contains(t, out, "Deleted 1 message(s) of "+consumer)
	require.Equal(t, 2, depth(consumer+".dlq"))

	desc, err := e.tc.DescribeWorkflowExecution(t.Context(), waiting, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())
}
