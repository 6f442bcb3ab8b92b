package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command/commandtest"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// running is a ledger serving a fresh queue on the test broker.
type running struct {
	s     *Service
	queue string
	conn  *amqp.Conn
	req   *amqp.Requester
}

func startLedger(t testing.TB, db *store.DB, cfg Config) *running {
	t.Helper()
	conn := commandtest.Dial(t)
	cfg.Queue = commandtest.Queue(t, "ledger.commands")
	s := newService(t, db, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	r := &running{s: s, queue: cfg.Queue, conn: conn, req: commandtest.Requester(t, conn)}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	reply := commandtest.WaitReady(wctx, t, r.req, r.queue, commandtest.Envelope(t, events.QueryLedgerBalance, events.LedgerBalanceQuery{AccountID: "nobody"}))
	require.Equal(t, events.ReasonUnknownAccount, reply.Reason)
	return r
}

func (r *running) send(t *testing.T, env events.Envelope) events.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, _ := commandtest.Request(ctx, t, r.req, r.queue, env)
	return reply
}

func TestCommandsOverRabbitMQ(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		r := startLedger(t, db, Config{})
		acct, _ := runSteps(t, r.send)

		bal := r.send(t, commandtest.Envelope(t, events.QueryLedgerBalance, events.LedgerBalanceQuery{AccountID: acct}))
		require.Equal(t, events.ReplyAccepted, bal.Status)
		require.EqualValues(t, 55, commandtest.Result[contract.Account](t, bal).Balance)
		stmt := r.send(t, commandtest.Envelope(t, events.QueryLedgerStatement, events.LedgerStatementQuery{AccountID: acct}))
		require.Equal(t, events.ReplyAccepted, stmt.Status)
		st := commandtest.Result[contract.AccountStatement](t, stmt)
		require.Len(t, st.Events, 7)
		require.Equal(t, contract.AccountEventRefunded, st.Events[6].Type)
		require.NotEmpty(t, st.Events[6].CommandID)

		// One command id sent three times: one state change, three
		// byte-identical replies.
		dep := commandtest.Envelope(t, events.CmdLedgerRefund, events.LedgerRefund{AccountID: acct, Amount: eur(1)})
		var bodies [][]byte
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			reply, body := commandtest.Request(ctx, t, r.req, r.queue, dep)
			cancel()
			require.Equal(t, events.ReplyAccepted, reply.Status)
			bodies = append(bodies, body)
		}
		require.Equal(t, bodies[0], bodies[1])
		require.Equal(t, bodies[0], bodies[2])
		a, err := r.s.Balance(context.Background(), acct)
		require.NoError(t, err)
		require.EqualValues(t, 56, a.Balance)
		require.EqualValues(t, 8, a.Version)
	})
}

// countingDedup is the consumer's default deduplication, counting the
// duplicates it drops per message id (the connection's stats count those of
// every queue, and other tests publish on the same exchange).
type countingDedup struct {
	*amqp.MemoryDedup
	mu   sync.Mutex
	dups map[string]int
}

func (c *countingDedup) Claim(ctx context.Context, id string) (amqp.ClaimResult, error) {
	res, err := c.MemoryDedup.Claim(ctx, id)
	if res == amqp.ClaimDuplicate {
		c.mu.Lock()
		c.dups[id]++
		c.mu.Unlock()
	}
	return res, err
}

func (c *countingDedup) duplicates(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dups[id]
}

// subscribe collects the funds.* events of accounts with the prefix from
// the event exchange, on a connection of its own; it returns the
// deduplication that counts dropped copies and the envelopes the handler saw,
// in the order it saw them.
func subscribe(t *testing.T, prefix string, bindings ...string) (*countingDedup, func() []events.Envelope) {
	t.Helper()
	conn := commandtest.Dial(t)
	q := commandtest.Queue(t, "ledger.test.subscriber")
	var (
		mu  sync.Mutex
		got []events.Envelope
	)
	dedup := &countingDedup{MemoryDedup: amqp.NewMemoryDedup(0), dups: map[string]int{}}
	// One delivery at a time: the envelopes come in the order the broker
	// delivered them.
	cs, err := conn.NewConsumer(amqp.ConsumerConfig{Name: q, Bindings: bindings, Dedup: dedup, Concurrency: 1}, func(_ context.Context, d amqp.Delivery) error {
		env, _, err := amqp.EnvelopeFromDelivery(d)
		if err != nil {
			return amqp.Permanent(err)
		}
		if strings.HasPrefix(env.Subject, prefix) {
			mu.Lock()
			got = append(got, env)
			mu.Unlock()
		}
		return nil
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// The queue and its bindings exist once the consumer runs: wait for them
	// by publishing a probe event that only this subscriber can route.
	pub, err := conn.NewPublisher(amqp.PublisherConfig{})
	require.NoError(t, err)
	defer pub.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "subscriber never became ready")
		// A fresh id per probe: a repeated one would count as a duplicate.
		probe, err := events.New(events.TypeFundsDeposited, "test", events.FundsDeposited{AccountID: prefix + "probe", Amount: eur(1), Balance: eur(1)},
			events.WithSubject(prefix+"probe"))
		require.NoError(t, err)
		m, err := amqp.MessageFromEnvelope(amqp.DefaultExchange, probe)
		require.NoError(t, err)
		_ = pub.Publish(context.Background(), m)
		time.Sleep(50 * time.Millisecond) // polling the broker: no readiness signal exists
	}
	return dedup, func() []events.Envelope {
		mu.Lock()
		defer mu.Unlock()
		var out []events.Envelope
		for _, e := range got {
			if e.Subject != prefix+"probe" {
				out = append(out, e)
			}
		}
		return out
	}
}

// eventually polls cond until it holds or the deadline passes: the broker
// delivers asynchronously and offers nothing to wait on.
func eventually(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		require.True(t, time.Now().Before(deadline), msg)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConcurrentMovementsConserveMoney(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		r := startLedger(t, db, Config{SnapshotEvery: 25})
		prefix := "conc-" + uuid.NewString()[:8] + "-"
		_, published := subscribe(t, prefix, "funds.*")

		const accounts, commands, senders, initial = 20, 2000, 64, 1000
		ids := make([]string, accounts)
		for i := range ids {
			ids[i] = prefix + uuid.NewString()[:8]
			reply := r.send(t, commandtest.Envelope(t, events.CmdLedgerOpen, events.LedgerOpen{AccountID: ids[i], Currency: "EUR", InitialBalance: initial}))
			require.Equal(t, events.ReplyAccepted, reply.Status)
		}
		type accepted struct {
			acct  string
			delta int64
		}
		var (
			mu       sync.Mutex
			results  []accepted
			next     atomic.Int64
			wg       sync.WaitGroup
			failures = make(chan error, senders)
		)
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > commands {
						return
					}
					acct := ids[rand.IntN(accounts)]
					amount := int64(rand.IntN(400) + 1)
					var env events.Envelope
					var err error
					if rand.IntN(2) == 0 {
						env, err = events.New(events.CmdLedgerDeposit, "test", events.LedgerDeposit{AccountID: acct, Amount: eur(amount)}, events.WithSubject(acct))
					} else {
						env, err = events.New(events.CmdLedgerWithdraw, "test", events.LedgerWithdraw{AccountID: acct, Amount: eur(amount)}, events.WithSubject(acct))
						amount = -amount
					}
					if err != nil {
						failures <- err
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					reply, _, err := commandtest.TryRequest(ctx, r.req, r.queue, env)
					cancel()
					if err != nil {
						failures <- err
						return
					}
					switch {
					case reply.Accepted():
						mu.Lock()
						results = append(results, accepted{acct, amount})
						mu.Unlock()
					case reply.Reason != events.ReasonInsufficientFunds:
						failures <- errors.New("unexpected rejection " + reply.Reason)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(failures)
		for err := range failures {
			require.NoError(t, err)
		}

		want := map[string]int64{}
		for _, id := range ids {
			want[id] = initial
		}
		for _, a := range results {
			want[a.acct] += a.delta
		}
		ctx := context.Background()
		stmtFunds := map[string]string{} // command id -> type
		for _, id := range ids {
			a, err := r.s.Balance(ctx, id)
			require.NoError(t, err)
			require.Equal(t, want[id], a.Balance, "balance of %s is the fold of the accepted commands", id)
			st, err := r.s.Statement(ctx, id)
			require.NoError(t, err)
			require.Equal(t, a, st.Account, "snapshot-based load equals the full fold")
			for _, e := range st.Events {
				if e.Type == contract.AccountEventOpened {
					continue
				}
				var m contract.FundsMoved
				require.NoError(t, json.Unmarshal(e.Data, &m))
				require.GreaterOrEqual(t, m.Balance, int64(0), "no balance is ever negative")
				stmtFunds[e.CommandID] = e.Type
			}
		}
		require.Len(t, stmtFunds, len(results))

		eventually(t, 60*time.Second, func() bool { return len(published()) >= len(stmtFunds) }, "not every event was published")
		pubFunds := map[string]string{}
		for _, e := range published() {
			pubFunds[e.CausationID] = e.Type
		}
		require.Equal(t, stmtFunds, pubFunds, "the events published are the events in the statements")
	})
}

func TestRelayCrashRepublishesAndSubscriberDeduplicates(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		var crashed atomic.Bool
		prefix := "crash-" + uuid.NewString()[:8] + "-"
		dedup, published := subscribe(t, prefix, events.TypeFundsDeposited)
		r := startLedger(t, db, Config{Relay: store.RelayConfig{
			AfterPublish: func(_ context.Context, batch []store.OutboxMessage) error {
				for _, m := range batch {
					if m.Type == events.TypeFundsDeposited && crashed.CompareAndSwap(false, true) {
						return errors.New("relay killed between publish and mark")
					}
				}
				return nil
			},
			RetryDelay: 10 * time.Millisecond,
		}})
		acct := prefix + "a"
		require.True(t, r.send(t, commandtest.Envelope(t, events.CmdLedgerOpen, events.LedgerOpen{AccountID: acct, Currency: "EUR"})).Accepted())
		dep := commandtest.Envelope(t, events.CmdLedgerDeposit, events.LedgerDeposit{AccountID: acct, Amount: eur(9)})
		// The reply may arrive before the relay's fault point ran: it went
		// out in the batch that the "crash" leaves unmarked.
		require.True(t, r.send(t, dep).Accepted())

		eventID := events.DeterministicID(dep.ID, "event/0/"+events.TypeFundsDeposited)
		eventually(t, 30*time.Second, func() bool { return dedup.duplicates(eventID) >= 1 },
			"the republished event never reached the subscriber")
		require.True(t, crashed.Load())
		got := published()
		require.Len(t, got, 1, "the subscriber handled the event once")
		require.Equal(t, eventID, got[0].ID)
	})
}

func TestMalformedCommandIsDeadLettered(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	r := startLedger(t, db, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	commandtest.Publish(ctx, t, r.conn, r.queue, amqp.Message{ID: "poison-1", Type: events.CmdLedgerDeposit, Body: []byte("not an envelope")})
	body, reason := commandtest.DeadLetter(ctx, t, r.queue)
	require.Equal(t, "not an envelope", string(body))
	require.Contains(t, reason, "malformed")
}
