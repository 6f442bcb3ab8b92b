package amqp

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/testenv"
)

// queueTypes returns the type of every queue of the AMQP_URL's vhost, as
// rabbitmqctl lists them (the broker tells no client a queue's type).
func queueTypes(t *testing.T) map[string]string {
	t.Helper()
	u, err := amqp091.ParseURI(testenv.AMQPURL(t))
	require.NoError(t, err)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl", "install RabbitMQ's CLI tools and put rabbitmqctl on PATH")
	}
	// The queues of the vhost the tests' AMQP_URL names.
	out, err := exec.Command("rabbitmqctl", "list_queues", "-p", u.Vhost, "-q", "--no-table-headers", "name", "type").CombinedOutput()
	require.NoError(t, err, "rabbitmqctl list_queues: %s", out)
	types := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, typ, ok := strings.Cut(line, "\t"); ok {
			types[name] = typ
		}
	}
	return types
}

func TestConsumerDeclaresQuorumQueuesByDefault(t *testing.T) {
	url := testenv.AMQPURL(t)
	b := newTestBroker(t, url)
	q := b.name("quorum")
	cs, _ := b.start(ConsumerConfig{Name: q, MaxAttempts: 3}, func(context.Context, Delivery) error { return nil })
	b.waitQueue(q)

	bc := newTestBrokerConfig(t, url, Config{URL: url, QueueType: QueueClassic})
	qc := bc.name("classic")
	csc, _ := bc.start(ConsumerConfig{Name: qc, MaxAttempts: 3}, func(context.Context, Delivery) error { return nil })
	bc.waitQueue(qc)
	types := queueTypes(t)
	for _, name := range cs.Queues() {
		require.Equal(t, QueueQuorum, types[name], name)
	}
	for _, name := range csc.Queues() {
		require.Equal(t, QueueClassic, types[name], name)
	}
}

// runUntilDone runs cs until it returns on its own, failing the test after
// a deadline: a consumer that gives up must not retry.
func runUntilDone(t *testing.T, cs *Consumer) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("the consumer kept trying to declare its queue")
		return nil
	}
}

func TestQueueThatExistsAsClassicGivesOneClearError(t *testing.T) {
	url := testenv.AMQPURL(t)
	b := newTestBroker(t, url)
	q := b.name("upgraded")
	// A queue from before quorum queues, declared as the consumer used to,
	// with a message waiting in it.
	_, err := b.admin.QueueDeclare(q, true, false, false, false, amqp091.Table{
		"x-dead-letter-exchange": b.conn.Config().DeadLetterExchange, "x-dead-letter-routing-key": q,
	})
	require.NoError(t, err)
	require.NoError(t, b.publisher().Publish(testCtx(t), Message{RoutingKey: q, ID: "waiting", Body: []byte("x")}))

	cs, err := b.conn.NewConsumer(ConsumerConfig{Name: q}, func(context.Context, Delivery) error { return nil })
	require.NoError(t, err)
	err = runUntilDone(t, cs)
	var mismatch *QueueMismatchError
	require.ErrorAs(t, err, &mismatch)
	require.Equal(t, q, mismatch.Queue)
	require.Equal(t, QueueClassic, mismatch.ExistingType)
	require.Equal(t, "quorum, x-delivery-limit=20", mismatch.Wanted)
	msg := err.Error()
	require.NotContains(t, msg, "\n", "one line")
	for _, want := range []string{
		"queue " + q + " exists as a classic queue holding 1 messages",
		"declared as quorum, x-delivery-limit=20",
		"nothing was changed",
		"drain it and delete it", "AMQP_QUEUE_TYPE=classic",
	} {
		require.Contains(t, msg, want)
	}
	t.Log(msg)
	require.Equal(t, 1, b.depth(q), "the waiting message is still there")
	require.Equal(t, QueueClassic, queueTypes(t)[q])

	// Keeping classic queues: the same queue is declared again unchanged and
	// its message consumed.
	bc := newTestBrokerConfig(t, url, Config{URL: url, QueueType: QueueClassic})
	bc.conn.cfg.DeadLetterExchange = b.conn.Config().DeadLetterExchange
	got := make(chan Delivery, 1)
	_, stop := bc.start(ConsumerConfig{Name: q}, func(_ context.Context, d Delivery) error { got <- d; return nil })
	require.Equal(t, "waiting", recv(t, got).ID)
	require.NoError(t, stop())
}

func TestQueueWithAnotherDeliveryLimitGivesOneClearError(t *testing.T) {
	url := testenv.AMQPURL(t)
	b := newTestBrokerConfig(t, url, Config{URL: url, DeliveryLimit: 5})
	q := b.name("limit")
	_, stop := b.start(ConsumerConfig{Name: q}, func(context.Context, Delivery) error { return nil })
	b.waitQueue(q)
	require.NoError(t, stop())

	other := newTestBrokerConfig(t, url, Config{URL: url, DeliveryLimit: 20})
	other.conn.cfg.DeadLetterExchange = b.conn.Config().DeadLetterExchange
	cs, err := other.conn.NewConsumer(ConsumerConfig{Name: q}, func(context.Context, Delivery) error { return nil })
	require.NoError(t, err)
	err = runUntilDone(t, cs)
	var mismatch *QueueMismatchError
	require.ErrorAs(t, err, &mismatch)
	require.Equal(t, "x-delivery-limit", mismatch.Arg)
	require.Equal(t, "5", mismatch.Existing)
	require.Contains(t, err.Error(), "exists as a quorum queue with x-delivery-limit 5")
	require.Contains(t, err.Error(), "AMQP_DELIVERY_LIMIT=5")
}

// TestDeliveryLimitEndsACrashLoopInTheDeadLetters runs a handler that takes
// its consumer's connection down every time it gets the message, as a
// process crashing on it would: the broker returns the message each time,
// and after the delivery limit dead-letters it to the consumer's dead-letter
// queue, where the dead-letter listing gives the reason.
func TestDeliveryLimitEndsACrashLoopInTheDeadLetters(t *testing.T) {
	brokerURL := testenv.AMQPURL(t)
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	proxy := startProxy(t, u.Host)
	const limit = 3
	b := newTestBrokerConfig(t, brokerURL, Config{URL: proxy.URL(brokerURL), DeliveryLimit: limit,
		ReconnectInitial: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	q := b.name("crash")

	var deliveries, drops atomic.Int32
	cs, _ := b.start(ConsumerConfig{Name: q, Dedup: NoDedup{}}, func(ctx context.Context, d Delivery) error {
		if d.ID != "poison" {
			return nil
		}
		deliveries.Add(1)
		// The "process" is gone: its ack never reaches the broker.
		drops.Add(int32(proxy.DropAll()))
		return nil
	})
	b.waitQueue(q)
	require.NoError(t, b.publisher().Publish(testCtx(t), Message{RoutingKey: q, ID: "poison", Body: []byte("x")}))

	var dls []DeadLetter
	require.Eventually(t, func() bool {
		dls, err = b.conn.ListDeadLetters(testCtx(t), cs.DeadLetterQueue(), 0)
		return err == nil && len(dls) == 1
	}, 30*time.Second, 50*time.Millisecond, "the message reaches the dead letters")
	require.GreaterOrEqual(t, drops.Load(), int32(limit+1), "the connection went down at every delivery")
	require.EqualValues(t, limit+1, deliveries.Load(), "delivered up to the limit, then no more")
	require.Equal(t, "poison", dls[0].ID)
	require.Equal(t, "delivery_limit", dls[0].BrokerReason)
	require.Contains(t, dls[0].LastError, "delivery_limit")
	b.eventuallyDepth(q, 0, "not in the consumer's queue any more")
	require.EqualValues(t, limit+1, deliveries.Load(), "no redelivery after dead-lettering")
}

func TestDialMovesPastANodeThatDoesNotAnswer(t *testing.T) {
	brokerURL := testenv.AMQPURL(t)
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	closed := *u
	closed.Host = "127.0.0.1:1"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{URL: closed.String() + "," + brokerURL, ConnectionName: t.Name()})
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.True(t, c.Connected())
	require.Contains(t, c.Node(), u.Host, "on the second node")
	require.NotContains(t, c.Node(), u.User.String(), "the node is logged without its password")
	require.Contains(t, c.Stats().ReconnectsByNode(), "127.0.0.1:1")
}

// TestConnMovesToTheNextNodeWhenItsNodeGoesAway publishes from 20
// goroutines, each publishing its message again until it is confirmed, to a
// consumer, through two "nodes" (proxies to the same broker); the first goes
// away mid-stream. The Conn moves to the second, and every confirmed message
// is handled exactly once: no confirm is lost or taken for granted, no ack
// lost.
func TestConnMovesToTheNextNodeWhenItsNodeGoesAway(t *testing.T) {
	brokerURL := testenv.AMQPURL(t)
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	first, second := startProxy(t, u.Host), startProxy(t, u.Host)
	b := newTestBrokerConfig(t, brokerURL, Config{URL: first.URL(brokerURL) + "," + second.URL(brokerURL),
		ReconnectInitial: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	require.Contains(t, b.conn.Node(), first.Addr())
	q := b.name("move")

	var mu sync.Mutex
	handled := map[string]int{}
	_, stop := b.start(ConsumerConfig{Name: q, Bindings: []string{"move.#"}, Prefetch: 64},
		func(_ context.Context, d Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			handled[d.ID]++
			return nil
		})
	b.waitQueue(q)

	const publishers, total, goAwayAt = 20, 3000, 1000
	p := b.publisher()
	var next, confirmed, failed atomic.Int64
	gone := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < total; i = next.Add(1) - 1 {
				m := Message{Exchange: b.conn.Config().Exchange, RoutingKey: "move.test", ID: fmt.Sprintf("m-%d", i), Body: []byte("x")}
				for {
					err := p.Publish(ctx, m)
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						t.Errorf("publish %s: %v", m.ID, err)
						return
					}
					failed.Add(1)
				}
				if confirmed.Add(1) == goAwayAt {
					once.Do(func() {
						require.Positive(t, first.Open(), "the Conn is on the first node")
						first.Close()
						close(gone)
					})
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-gone:
	default:
		t.Fatal("the first node never went away")
	}
	require.Contains(t, b.conn.Node(), second.Addr(), "the Conn moved to the second node")
	require.Positive(t, second.Open())
	require.GreaterOrEqual(t, b.conn.Stats().ReconnectsByNode()[second.Addr()], int64(1))
	require.Zero(t, b.conn.Stats().ReconnectsByNode()[first.Addr()])

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == total
	}, time.Minute, 20*time.Millisecond, "every confirmed message is consumed")
	require.Eventually(t, func() bool { return b.depth(q) == 0 }, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, stop())
	mu.Lock()
	defer mu.Unlock()
	for id, n := range handled {
		require.Equal(t, 1, n, "message %s handled %d times", id, n)
	}
	t.Logf("confirmed %d, publishes repeated after an error %d, deliveries %d, duplicates dropped %d",
		confirmed.Load(), failed.Load(), b.conn.Stats().Consumed.Load(), b.conn.Stats().DuplicatesDropped.Load())
}
