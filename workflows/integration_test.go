package workflows

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/services/ledger"
	"github.com/sagaflow/sagaflow/services/store"
)

// liveSystem is the transfer saga wired end to end: the shared Temporal dev
// server, a worker with the RabbitMQ activities, its reply consumer, and the
// ledger service on SQLite. Its queues carry a unique suffix so concurrent
// test runs on one broker never see each other's messages.
type liveSystem struct {
	client      client.Client
	taskQueue   string
	suffix      string
	conn        *amqp.Conn
	publisher   *amqp.Publisher
	requester   *amqp.Requester
	ledger      *ledger.Service
	ledgerQueue string

	mu          sync.Mutex
	outcomeEvts map[string][]string // workflow id -> ids of transfer.* envelopes received
}

func startLiveSystem(tb testing.TB, workerOpts worker.Options) *liveSystem {
	tb.Helper()
	url := testenv.AMQPURL(tb)
	temporaltest.Server(tb) // skips early without the Temporal CLI
	suffix := strings.ToLower(strings.TrimPrefix(temporaltest.TaskQueue(tb), "Test"))
	s := &liveSystem{suffix: suffix, ledgerQueue: "it.ledger." + suffix, outcomeEvts: map[string][]string{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var closers []func() error
	tb.Cleanup(func() {
		stop()
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		deleteQueues(url, "it.", suffix)
	})
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(runCtx); err != nil && runCtx.Err() == nil {
				tb.Errorf("%s stopped: %v", name, err)
			}
		}()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	s.conn, err = amqp.Dial(ctx, amqp.Config{URL: url, ConnectionName: "transfer-it-" + suffix})
	require.NoError(tb, err)
	closers = append(closers, s.conn.Close)
	db, err := store.Open(ctx, filepath.Join(tb.TempDir(), "ledger.db"))
	require.NoError(tb, err)
	closers = append(closers, db.Close)
	s.ledger, err = ledger.New(db, ledger.Config{Queue: s.ledgerQueue})
	require.NoError(tb, err)
	require.NoError(tb, s.ledger.Migrate(ctx))
	run("ledger", func(ctx context.Context) error { return s.ledger.Run(ctx, s.conn) })

	s.publisher, err = s.conn.NewPublisher(amqp.PublisherConfig{})
	require.NoError(tb, err)
	closers = append(closers, s.publisher.Close)
	s.requester, err = s.conn.NewRequester(amqp.RequesterConfig{})
	require.NoError(tb, err)
	closers = append(closers, s.requester.Close)

	s.client = temporaltest.Client(tb)
	replyQueue := "it.replies." + suffix
	acts, err := activities.New(activities.Config{ReplyQueue: replyQueue, LedgerQueue: s.ledgerQueue}, s.publisher, s.client, quiet)
	require.NoError(tb, err)
	replies, err := s.conn.NewConsumer(activities.ReplyConsumerConfig(replyQueue), acts.HandleReply)
	require.NoError(tb, err)
	run("reply consumer", replies.Run)

	outcomes, err := s.conn.NewConsumer(amqp.ConsumerConfig{
		Name: "it.transfer-events." + suffix, Bindings: []string{"transfer.*"}, Decoder: amqp.DecodeEnvelope,
	}, func(_ context.Context, d amqp.Delivery) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.outcomeEvts[d.CorrelationID] = append(s.outcomeEvts[d.CorrelationID], d.ID)
		return nil
	})
	require.NoError(tb, err)
	run("transfer event consumer", outcomes.Run)

	// The consumers declare and bind their queues before they consume:
	// once both queues have a consumer, no reply or event is dropped as
	// unroutable.
	waitConsumer(tb, url, replyQueue)
	waitConsumer(tb, url, "it.transfer-events."+suffix)

	_, s.taskQueue = temporaltest.NewWorkerWithOptions(tb, workerOpts, func(w worker.Worker) {
		w.RegisterWorkflow(TransferWorkflow)
		w.RegisterActivity(activities.WithRequester(acts, s.requester))
	})
	return s
}

// deleteQueues removes the test's durable queues (their names start with
// prefix and contain suffix) with rabbitmqctl, when the broker is local and
// the tool installed; the amqp package declares but never deletes queues.
func deleteQueues(url, prefix, suffix string) {
	if !strings.Contains(url, "@127.0.0.1") && !strings.Contains(url, "@localhost") {
		return
	}
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		return
	}
	out, err := exec.Command(ctl, "list_queues", "--quiet", "--no-table-headers", "name").Output()
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, prefix) && strings.Contains(name, suffix) {
			_ = exec.Command(ctl, "delete_queue", name).Run()
		}
	}
}

// waitConsumer waits until queue exists and has a consumer. Polling is the
// only way to learn that another component declared and consumes it.
func waitConsumer(tb testing.TB, url, queue string) {
	tb.Helper()
	conn, err := amqp091.Dial(url)
	require.NoError(tb, err)
	defer func() { _ = conn.Close() }()
	const limit = 2 * time.Minute
	deadline := time.Now().Add(limit)
	for {
		// A passive declare of a missing queue closes its channel: one
		// channel per attempt.
		ch, err := conn.Channel()
		require.NoError(tb, err)
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		_ = ch.Close()
		if err == nil && q.Consumers > 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no consumer on %s within %s (last: %v)", queue, limit, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

func (s *liveSystem) waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	// Generous: the whole test run shares two cores with a dev server.
	const limit = 2 * time.Minute
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, limit)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// command sends a ledger command and returns the ledger's reply.
func (s *liveSystem) command(tb testing.TB, typ string, p events.Payload) events.Reply {
	tb.Helper()
	env, err := events.New(typ, "transfer-it", p)
	require.NoError(tb, err)
	m, err := amqp.MessageFromEnvelope(amqp.DefaultExchange, env)
	require.NoError(tb, err)
	var d amqp.Delivery
	s.waitFor(tb, "the ledger's reply to "+typ, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err = s.requester.Request(ctx, s.ledgerQueue, m)
		if errors.Is(err, amqp.ErrUnroutable) || errors.Is(err, amqp.ErrNacked) {
			return false // the ledger has not declared its queue yet, or its quorum queue is starting
		}
		require.NoError(tb, err)
		return true
	})
	_, reply, err := events.DecodeAs[events.Reply](d.Body)
	require.NoError(tb, err)
	return reply
}

func (s *liveSystem) openAccounts(tb testing.TB, n int, balance int64) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("acc-%d-%s", i, s.suffix)
		r := s.command(tb, events.CmdLedgerOpen, events.LedgerOpen{AccountID: ids[i], Currency: "EUR", InitialBalance: balance})
		require.True(tb, r.Accepted(), "open %s: %+v", ids[i], r)
	}
	return ids
}

// transferRun is one started transfer and how it ended.
type transferRun struct {
	in     contract.TransferInput
	result contract.TransferResult
	err    error
}

// transferConcurrency bounds the transfers in flight at once, so a loaded
// machine queues them in the test rather than timing out RPCs to a dev
// server that has more sagas than it can start.
const transferConcurrency = 32

func (s *liveSystem) runTransfers(ctx context.Context, inputs []contract.TransferInput) []transferRun {
	runs := make([]transferRun, len(inputs))
	var wg sync.WaitGroup
	slots := make(chan struct{}, transferConcurrency)
	for i, in := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			runs[i].in = in
			run, err := s.client.ExecuteWorkflow(ctx, contract.TransferStartOptions(in.TransferID, s.taskQueue), TransferWorkflow, in)
			var started *serviceerror.WorkflowExecutionAlreadyStarted
			if errors.As(err, &started) {
				// The transfer already ran: read its outcome instead.
				run = s.client.GetWorkflow(ctx, contract.TransferWorkflowID(in.TransferID), "")
				err = nil
			}
			if err != nil {
				runs[i].err = err
				return
			}
			runs[i].err = run.Get(ctx, &runs[i].result)
		}()
	}
	wg.Wait()
	return runs
}

// TestTransferSagaConservesMoney runs 300 random transfers, 32 at a time,
// between 10 accounts through Temporal, RabbitMQ and the ledger: some to a
// closed account, some overdrawing, some repeating a transfer id. Money is
// conserved, every transfer ends, and the ledger recorded exactly the moves
// each outcome implies.
func TestTransferSagaConservesMoney(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	s := startLiveSystem(t, worker.Options{})
	const (
		accounts = 10
		balance  = 10_000
		count    = 300
	)
	ids := s.openAccounts(t, accounts, balance)
	closed := ids[accounts-1]
	r := s.command(t, events.CmdLedgerClose, events.LedgerClose{AccountID: closed, Reason: "test"})
	require.True(t, r.Accepted(), "close: %+v", r)

	rng := rand.New(rand.NewPCG(1, 2))
	var inputs []contract.TransferInput
	for i := range count {
		if i > 10 && rng.IntN(10) == 0 {
			inputs = append(inputs, inputs[rng.IntN(len(inputs))]) // a repeated transfer id
			continue
		}
		src := rng.IntN(accounts - 1)
		dst := rng.IntN(accounts - 1)
		if rng.IntN(10) == 0 {
			dst = accounts - 1 // the closed account
		}
		for dst == src {
			dst = rng.IntN(accounts - 1)
		}
		inputs = append(inputs, contract.TransferInput{
			TransferID:      fmt.Sprintf("%s-%d", s.suffix, i),
			SourceAccountID: ids[src], TargetAccountID: ids[dst],
			Amount: 1 + rng.Int64N(4000), Currency: "EUR",
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runs := s.runTransfers(ctx, inputs)

	byID := map[string]contract.TransferResult{}
	outcomes := map[contract.TransferOutcome]int{}
	for _, run := range runs {
		require.NoError(t, run.err, "transfer %s", run.in.TransferID)
		if prev, ok := byID[run.in.TransferID]; ok {
			require.Equal(t, prev, run.result, "a repeated transfer id reports the first run's outcome")
			continue
		}
		byID[run.in.TransferID] = run.result
		outcomes[run.result.Outcome]++
	}
	t.Logf("outcomes of %d distinct transfers: %v", len(byID), outcomes)
	require.Positive(t, outcomes[contract.TransferCompleted])
	require.Positive(t, outcomes[contract.TransferFailed], "some transfers overdraw")
	require.Positive(t, outcomes[contract.TransferCompensated], "some transfers go to the closed account")
	require.Equal(t, len(byID), outcomes[contract.TransferCompleted]+outcomes[contract.TransferFailed]+outcomes[contract.TransferCompensated])

	// Money is conserved.
	var sum int64
	funds := map[string]map[string]int{} // workflow id -> event type -> count
	for _, id := range ids {
		acc, err := s.ledger.Balance(ctx, id)
		require.NoError(t, err)
		require.GreaterOrEqual(t, acc.Balance, int64(0))
		sum += acc.Balance
		st, err := s.ledger.Statement(ctx, id)
		require.NoError(t, err)
		for _, ev := range st.Events {
			if ev.CorrelationID == "" {
				continue
			}
			if funds[ev.CorrelationID] == nil {
				funds[ev.CorrelationID] = map[string]int{}
			}
			funds[ev.CorrelationID][ev.Type+"@"+id]++
		}
	}
	require.Equal(t, int64(accounts*balance), sum, "the sum of all balances is unchanged")

	// Every transfer is terminal and the ledger holds exactly its moves.
	for _, in := range inputs {
		wfID := contract.TransferWorkflowID(in.TransferID)
		desc, err := s.client.DescribeWorkflowExecution(ctx, wfID, "")
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.GetWorkflowExecutionInfo().GetStatus(), wfID)

		want := map[string]int{}
		switch res := byID[in.TransferID]; res.Outcome {
		case contract.TransferCompleted:
			want[events.TypeFundsWithdrawn+"@"+in.SourceAccountID] = 1
			want[events.TypeFundsDeposited+"@"+in.TargetAccountID] = 1
		case contract.TransferCompensated:
			want[events.TypeFundsWithdrawn+"@"+in.SourceAccountID] = 1
			want[events.TypeFundsRefunded+"@"+in.SourceAccountID] = 1
			require.Equal(t, events.ReasonAccountClosed, res.Reason)
		case contract.TransferFailed:
			require.Equal(t, events.ReasonInsufficientFunds, res.Reason)
		}
		got := funds[wfID]
		if got == nil {
			got = map[string]int{}
		}
		require.Equal(t, want, got, "ledger moves of %s (%s)", wfID, byID[in.TransferID].Outcome)
	}

	// Each transfer published its outcome exactly once (duplicates dropped by id).
	s.waitFor(t, "an outcome event of every transfer", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for id := range byID {
			if len(s.outcomeEvts[contract.TransferWorkflowID(id)]) == 0 {
				return false
			}
		}
		return true
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range byID {
		require.Len(t, s.outcomeEvts[contract.TransferWorkflowID(id)], 1, id)
	}
}
