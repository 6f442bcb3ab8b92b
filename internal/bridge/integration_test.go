package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/bridge"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

func TestMain(m *testing.M) { temporaltest.Main(m) }

// standInOrderWorkflow takes the place of the order saga: it waits for the
// cancel signal or an hour and says which came first.
func standInOrderWorkflow(ctx workflow.Context, order events.OrderPlaced) (string, error) {
	var req contract.CancelRequest
	timerCtx, stopTimer := workflow.WithCancel(ctx)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalCancel), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &req)
	})
	sel.AddFuture(workflow.NewTimer(timerCtx, time.Hour), func(workflow.Future) {})
	sel.Select(ctx)
	stopTimer()
	if req.Reason != "" {
		return fmt.Sprintf("order %s cancelled: %s (event %s)", order.OrderID, req.Reason, req.EventID), nil
	}
	return "order " + order.OrderID + " timed out", nil
}

// bridgeEnv is a running bridge on a scratch exchange and a test task queue.
type bridgeEnv struct {
	broker   *testenv.Broker
	temporal client.Client
	bridge   *bridge.Bridge
	stats    *amqp.Stats
	pub      *amqp.Publisher
	dead     <-chan dead
}

type dead struct {
	lastError string
	body      []byte
}

func startBridge(t *testing.T) *bridgeEnv {
	t.Helper()
	broker := testenv.NewBroker(t)
	tc, taskQueue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflowWithOptions(standInOrderWorkflow, workflow.RegisterOptions{Name: contract.OrderWorkflowType})
	})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, amqp.Config{
		URL: broker.URL, ConnectionName: t.Name(),
		Exchange: broker.Exchange, DeadLetterExchange: broker.DeadLetterExchange,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	name := broker.Name("bridge")
	b, err := bridge.New(tc, bridge.Config{Name: name, TaskQueue: taskQueue})
	require.NoError(t, err)
	consumer, err := b.Consumer(conn)
	require.NoError(t, err)
	broker.DeleteAtEnd(consumer.Queues()...)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})

	raw := broker.DeadLetters(name)
	deadCh := make(chan dead, 16)
	go func() {
		for d := range raw {
			msg, _ := d.Headers[amqp.HeaderLastError].(string)
			deadCh <- dead{lastError: msg, body: d.Body}
		}
	}()
	broker.WaitConsumer(name)

	pub, err := conn.NewPublisher(amqp.PublisherConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	return &bridgeEnv{broker: broker, temporal: tc, bridge: b, stats: conn.Stats(), pub: pub, dead: deadCh}
}

func (e *bridgeEnv) publish(t *testing.T, env events.Envelope) {
	t.Helper()
	m, err := amqp.MessageFromEnvelope(e.broker.Exchange, env)
	require.NoError(t, err)
	e.publishMessage(t, m)
}

func (e *bridgeEnv) publishMessage(t *testing.T, m amqp.Message) {
	t.Helper()
	m.Exchange = e.broker.Exchange
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.pub.Publish(ctx, m))
}

// waitDone waits until the bridge's consumer has finished with n deliveries
// (handled, dropped as duplicates or dead-lettered).
func (e *bridgeEnv) waitDone(t *testing.T, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		s := e.stats
		return s.Handled.Load()+s.DuplicatesDropped.Load()+s.DeadLettered.Load() >= n
	}, 20*time.Second, 10*time.Millisecond)
}

func (e *bridgeEnv) nextDead(t *testing.T) dead {
	t.Helper()
	select {
	case d := <-e.dead:
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no dead letter within 20s")
		return dead{}
	}
}

// executions lists every run of a workflow id, waiting for visibility to
// catch up with at least want runs.
func (e *bridgeEnv) executions(t *testing.T, workflowID string, want int) int {
	t.Helper()
	var n int
	require.Eventually(t, func() bool {
		resp, err := e.temporal.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = %q", workflowID),
		})
		if err != nil {
			return false
		}
		n = len(resp.Executions)
		return n >= want
	}, 20*time.Second, 50*time.Millisecond)
	return n
}

func TestIntegrationDuplicateEventsStartOneSaga(t *testing.T) {
	e := startBridge(t)
	orderID := uuid.NewString()
	placed := envelope(t, events.TypeOrderPlaced, validOrder(orderID), events.WithCorrelationID("corr-"+orderID))
	for range 3 {
		e.publish(t, placed) // a redelivery: the same envelope id
	}
	// A producer that published the same order twice: a new envelope id.
	again := envelope(t, events.TypeOrderPlaced, validOrder(orderID), events.WithCorrelationID("corr-"+orderID))
	e.publish(t, again)
	e.waitDone(t, 4)

	require.Equal(t, int64(1), e.bridge.Stats().Started.Load())
	require.GreaterOrEqual(t, e.bridge.Stats().AlreadyStarted.Load(), int64(1), "the second envelope id must reach Temporal and be recognised")
	wid := contract.OrderWorkflowID(orderID)
	require.Equal(t, 1, e.executions(t, wid, 1))

	desc, err := e.temporal.DescribeWorkflowExecution(t.Context(), wid, "")
	require.NoError(t, err)
	var eventID, corr string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(desc.WorkflowExecutionInfo.Memo.Fields[contract.MemoEventID], &eventID))
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(desc.WorkflowExecutionInfo.Memo.Fields[contract.MemoCorrelationID], &corr))
	// The consumer handles deliveries concurrently: either envelope may win.
	require.Contains(t, []string{placed.ID, again.ID}, eventID)
	require.Equal(t, "corr-"+orderID, corr)

	// Once the saga has ended, the order is never run again.
	require.NoError(t, e.temporal.SignalWorkflow(t.Context(), wid, "", contract.SignalCancel, contract.CancelRequest{Reason: "test"}))
	var result string
	require.NoError(t, e.temporal.GetWorkflow(t.Context(), wid, "").Get(t.Context(), &result))
	e.publish(t, envelope(t, events.TypeOrderPlaced, validOrder(orderID)))
	e.waitDone(t, 5)
	require.Equal(t, int64(1), e.bridge.Stats().Started.Load())
	require.Equal(t, 1, e.executions(t, wid, 1))
}

func TestIntegrationInvalidPayloadIsDeadLettered(t *testing.T) {
	e := startBridge(t)
	orderID := uuid.NewString()
	body := invalidPlacedBody(t, orderID)
	e.publishMessage(t, amqp.Message{RoutingKey: events.TypeOrderPlaced, ID: uuid.NewString(), Type: events.TypeOrderPlaced,
		ContentType: events.ContentTypeJSON, Body: body})

	d := e.nextDead(t)
	require.Equal(t, body, d.body)
	require.Contains(t, d.lastError, "total: must equal the sum of the lines")
	require.Equal(t, int64(0), e.bridge.Stats().Started.Load())
	_, err := e.temporal.DescribeWorkflowExecution(t.Context(), contract.OrderWorkflowID(orderID), "")
	require.Error(t, err, "no saga may start for an invalid order")
}

func TestIntegrationCancel(t *testing.T) {
	e := startBridge(t)

	t.Run("unknown order is dead-lettered with the reason", func(t *testing.T) {
		unknown := uuid.NewString()
		e.publish(t, envelope(t, events.TypeOrderCancelRequested, events.OrderCancelRequested{OrderID: unknown, Reason: "changed_mind"}))
		d := e.nextDead(t)
		require.Contains(t, d.lastError, "order "+unknown+" has no running saga")
	})

	t.Run("running order is signalled", func(t *testing.T) {
		orderID := uuid.NewString()
		e.publish(t, envelope(t, events.TypeOrderPlaced, validOrder(orderID)))
		wid := contract.OrderWorkflowID(orderID)
		require.Eventually(t, func() bool { return e.bridge.Stats().Started.Load() == 1 }, 20*time.Second, 10*time.Millisecond)

		cancel := envelope(t, events.TypeOrderCancelRequested, events.OrderCancelRequested{OrderID: orderID, Reason: "changed_mind"})
		e.publish(t, cancel)
		ctx, stop := context.WithTimeout(t.Context(), 20*time.Second)
		defer stop()
		var result string
		require.NoError(t, e.temporal.GetWorkflow(ctx, wid, "").Get(ctx, &result))
		require.Equal(t, fmt.Sprintf("order %s cancelled: changed_mind (event %s)", orderID, cancel.ID), result)
		require.Equal(t, int64(1), e.bridge.Stats().Signalled.Load())
		select {
		case d := <-e.dead:
			t.Fatalf("unexpected dead letter: %s", d.lastError)
		default:
		}
	})
}
