package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// testBroker is a Conn on its own exchanges, deleted with every queue the
// test declared when it ends.
type testBroker struct {
	t      *testing.T
	url    string
	conn   *Conn
	admin  *amqp091.Channel
	prefix string
}

func newTestBroker(t *testing.T, url string) *testBroker {
	t.Helper()
	return newTestBrokerConfig(t, url, Config{URL: url})
}

// newTestBrokerConfig is newTestBroker with a Conn configured by cfg (its
// exchanges and name are the test's), for example through a proxy, while
// the test's own inspection goes straight to the broker at url.
func newTestBrokerConfig(t *testing.T, url string, cfg Config) *testBroker {
	t.Helper()
	prefix := "test." + uuid.NewString()[:8]
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cfg.ConnectionName = t.Name()
	cfg.Exchange, cfg.DeadLetterExchange = prefix+".events", prefix+".dlx"
	conn, err := Dial(ctx, cfg)
	require.NoError(t, err)
	raw, err := amqp091.Dial(url)
	require.NoError(t, err)
	admin, err := raw.Channel()
	require.NoError(t, err)
	b := &testBroker{t: t, url: url, conn: conn, admin: admin, prefix: prefix}
	t.Cleanup(func() {
		require.NoError(t, conn.Close())
		_ = admin.ExchangeDelete(prefix+".events", false, false)
		_ = admin.ExchangeDelete(prefix+".dlx", false, false)
		_ = raw.Close()
	})
	return b
}

// name returns a unique queue name and deletes the queue (with the queues
// derived from it) at the end of the test.
func (b *testBroker) name(role string) string {
	n := b.prefix + "." + role
	b.t.Cleanup(func() { b.deleteQueues(n) })
	return n
}

func (b *testBroker) deleteQueues(name string) {
	raw, err := amqp091.Dial(b.url)
	if err != nil {
		return
	}
	defer func() { _ = raw.Close() }()
	for _, q := range []string{name, name + ".dlq"} {
		if ch, err := raw.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, ms := range []int{1, 2, 4, 5, 8, 10, 16, 20, 40, 50, 80, 100, 160, 200, 300, 320, 400, 640, 800, 1000, 1600, 2000, 3000, 5000, 10000} {
		if ch, err := raw.Channel(); err == nil {
			_, _ = ch.QueueDelete(fmt.Sprintf("%s.retry.%dms", name, ms), false, false, false)
			_ = ch.Close()
		}
	}
}

// depth returns the ready messages of a queue.
func (b *testBroker) depth(queue string) int {
	b.t.Helper()
	raw, err := amqp091.Dial(b.url)
	require.NoError(b.t, err)
	defer func() { _ = raw.Close() }()
	ch, err := raw.Channel()
	require.NoError(b.t, err)
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(b.t, err)
	return q.Messages
}

// eventuallyDepth waits until queue holds n messages. A quorum queue's
// message count lags its acks and returns by a moment, so a count read right
// after them is not yet the queue's.
func (b *testBroker) eventuallyDepth(queue string, n int, msg string) {
	b.t.Helper()
	require.Eventually(b.t, func() bool { return b.depth(queue) == n }, 15*time.Second, 20*time.Millisecond, msg)
}

// tap consumes a queue (a dead-letter queue) with a raw client.
func (b *testBroker) tap(queue string) <-chan amqp091.Delivery {
	b.t.Helper()
	ds, err := b.admin.Consume(queue, "", true, false, false, false, nil)
	require.NoError(b.t, err)
	return ds
}

func (b *testBroker) publisher() *Publisher {
	b.t.Helper()
	p, err := b.conn.NewPublisher(PublisherConfig{})
	require.NoError(b.t, err)
	b.t.Cleanup(func() { _ = p.Close() })
	return p
}

// start runs a consumer until the test ends; stop cancels it and returns
// Run's error once it returned.
func (b *testBroker) start(cfg ConsumerConfig, h Handler) (cs *Consumer, stop func() error) {
	b.t.Helper()
	cs, err := b.conn.NewConsumer(cfg, h)
	require.NoError(b.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	b.t.Cleanup(func() { _ = stop() })
	return cs, stop
}

// waitQueue waits until the consumer's queue exists, i.e. Run declared it.
func (b *testBroker) waitQueue(queue string) {
	b.t.Helper()
	require.Eventually(b.t, func() bool {
		raw, err := amqp091.Dial(b.url)
		if err != nil {
			return false
		}
		defer func() { _ = raw.Close() }()
		ch, err := raw.Channel()
		if err != nil {
			return false
		}
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Consumers > 0
	}, 10*time.Second, 20*time.Millisecond)
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		t.Fatal("timed out waiting for a message")
		panic("unreachable")
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRoundTripCarriesEveryProperty(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("roundtrip")
	got := make(chan Delivery, 1)
	b.start(ConsumerConfig{Name: q, Bindings: []string{"order.*"}, Decoder: DecodeEnvelope}, func(_ context.Context, d Delivery) error {
		got <- d
		return nil
	})
	b.waitQueue(q)

	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	env, err := events.New(events.TypeOrderConfirmed, "test", events.OrderConfirmed{OrderID: "o-1"},
		events.WithCorrelationID("order-o-1"), events.WithTime(at))
	require.NoError(t, err)
	m, err := MessageFromEnvelope(b.conn.Config().Exchange, env)
	require.NoError(t, err)
	m.ReplyTo = "nowhere"
	m.Headers = map[string]any{"tenant": "acme"}
	require.NoError(t, b.publisher().Publish(testCtx(t), m))

	d := recv(t, got)
	require.Equal(t, q, d.Queue)
	require.Equal(t, 1, d.Attempt)
	require.Equal(t, env.ID, d.ID)
	require.Equal(t, events.TypeOrderConfirmed, d.Type)
	require.Equal(t, events.TypeOrderConfirmed, d.RoutingKey)
	require.Equal(t, b.conn.Config().Exchange, d.Exchange)
	require.Equal(t, "order-o-1", d.CorrelationID)
	require.Equal(t, "nowhere", d.ReplyTo)
	require.Equal(t, events.ContentTypeJSON, d.ContentType)
	require.True(t, d.Timestamp.Equal(at), "timestamp %v", d.Timestamp)
	require.Equal(t, "acme", d.Headers["tenant"])
	gotEnv, payload, err := EnvelopeFromDelivery(d)
	require.NoError(t, err)
	require.Equal(t, env.ID, gotEnv.ID)
	require.Equal(t, events.OrderConfirmed{OrderID: "o-1"}, payload)
	require.EqualValues(t, 1, b.conn.Stats().Confirmed.Load())
}

func TestPublishUnroutableAndConcurrentReturnsMatch(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("routable")
	_, err := b.admin.QueueDeclare(q, false, true, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, b.admin.QueueBind(q, "routable", b.conn.Config().Exchange, false, nil))
	p := b.publisher()
	ex := b.conn.Config().Exchange

	err = p.Publish(testCtx(t), Message{Exchange: ex, RoutingKey: "nobody.listens", ID: "lost", Body: []byte("x")})
	require.ErrorIs(t, err, ErrUnroutable)

	// Interleaved publishes on the shared channel each get their own outcome.
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			key := "routable"
			if i%2 == 1 {
				key = "nobody.listens"
			}
			errs[i] = p.Publish(testCtx(t), Message{Exchange: ex, RoutingKey: key, ID: fmt.Sprint(i), Body: []byte("x")})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 {
			require.ErrorIs(t, err, ErrUnroutable, "message %d", i)
		} else {
			require.NoError(t, err, "message %d", i)
		}
	}
	require.EqualValues(t, 21, b.conn.Stats().Returned.Load())
	require.EqualValues(t, 20, b.conn.Stats().Confirmed.Load())
}

func TestPublishNackedWhenQueueRejects(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("full")
	_, err := b.admin.QueueDeclare(q, false, true, false, false, amqp091.Table{
		"x-max-length": int32(1),
		"x-overflow":   "reject-publish",
	})
	require.NoError(t, err)
	require.NoError(t, b.admin.QueueBind(q, "full", b.conn.Config().Exchange, false, nil))
	p := b.publisher()
	m := Message{Exchange: b.conn.Config().Exchange, RoutingKey: "full", Body: []byte("x")}

	require.NoError(t, p.Publish(testCtx(t), m))
	require.ErrorIs(t, p.Publish(testCtx(t), m), ErrNacked)
	require.EqualValues(t, 1, b.conn.Stats().Nacked.Load())
}

func TestPublishBatch(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("batch")
	_, err := b.admin.QueueDeclare(q, false, true, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, b.admin.QueueBind(q, "batch", b.conn.Config().Exchange, false, nil))
	ex := b.conn.Config().Exchange
	msgs := make([]Message, 100)
	for i := range msgs {
		msgs[i] = Message{Exchange: ex, RoutingKey: "batch", ID: fmt.Sprint(i), Body: []byte("x")}
	}
	require.NoError(t, b.publisher().PublishBatch(testCtx(t), msgs))
	require.Equal(t, 100, b.depth(q))

	msgs[7].RoutingKey = "nowhere"
	err = b.publisher().PublishBatch(testCtx(t), msgs)
	require.ErrorIs(t, err, ErrUnroutable)
	require.ErrorContains(t, err, "batch message 7 (7)")
	require.Equal(t, 199, b.depth(q))
	var be *BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Errs, len(msgs))
	for i, e := range be.Errs {
		if i == 7 {
			require.ErrorIs(t, e, ErrUnroutable)
			continue
		}
		require.NoError(t, e, "message %d was confirmed", i)
	}
}

func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("poison")
	handled := make(chan Delivery, 4)
	cs, _ := b.start(ConsumerConfig{Name: q, Bindings: []string{"order.#"}, Decoder: DecodeEnvelope},
		func(_ context.Context, d Delivery) error {
			handled <- d
			_, p, err := EnvelopeFromDelivery(d)
			if err != nil {
				return err
			}
			if p.(events.OrderConfirmed).OrderID == "reject-me" {
				return Permanent(errors.New("order is unknown"))
			}
			return nil
		})
	b.waitQueue(q)
	dlq := b.tap(cs.DeadLetterQueue())
	p := b.publisher()
	ex := b.conn.Config().Exchange

	// An undecodable body never reaches the handler.
	require.NoError(t, p.Publish(testCtx(t), Message{Exchange: ex, RoutingKey: "order.confirmed", ID: "garbage", Body: []byte("{not json")}))
	dead := recv(t, dlq)
	require.Equal(t, "garbage", dead.MessageId)
	require.Contains(t, dead.Headers[HeaderLastError], "decode")
	require.EqualValues(t, 1, dead.Headers[HeaderAttempts])
	require.Equal(t, "order.confirmed", dead.Headers[HeaderOriginalRoutingKey])
	require.Equal(t, ex, dead.Headers[HeaderOriginalExchange])
	require.Equal(t, []byte("{not json"), dead.Body)

	// A permanent handler error dead-letters at once.
	env, err := events.New(events.TypeOrderConfirmed, "test", events.OrderConfirmed{OrderID: "reject-me"})
	require.NoError(t, err)
	m, err := MessageFromEnvelope(ex, env)
	require.NoError(t, err)
	require.NoError(t, p.Publish(testCtx(t), m))
	dead = recv(t, dlq)
	require.Equal(t, env.ID, dead.MessageId)
	require.Contains(t, dead.Headers[HeaderLastError], "order is unknown")
	require.EqualValues(t, 1, dead.Headers[HeaderAttempts])
	require.Equal(t, env.ID, recv(t, handled).ID)

	// The consumer keeps consuming.
	env, err = events.New(events.TypeOrderConfirmed, "test", events.OrderConfirmed{OrderID: "fine"})
	require.NoError(t, err)
	m, err = MessageFromEnvelope(ex, env)
	require.NoError(t, err)
	require.NoError(t, p.Publish(testCtx(t), m))
	require.Equal(t, env.ID, recv(t, handled).ID)
	require.EqualValues(t, 2, b.conn.Stats().DeadLettered.Load())
	require.EqualValues(t, 2, b.conn.Stats().DeadLettersByConsumer()[q], "counted by the consumer")
}

func TestRetryWithGrowingDelaysThenAck(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("retry")
	var mu sync.Mutex
	var attempts []time.Time
	var seen []int
	succeeded := make(chan struct{})
	_, stop := b.start(ConsumerConfig{
		Name: q, Bindings: []string{"retry.me"},
		Backoff: BackoffConfig{Initial: 100 * time.Millisecond, Multiplier: 4, Max: time.Second},
	}, func(_ context.Context, d Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		seen = append(seen, d.Attempt)
		if len(attempts) < 3 {
			return fmt.Errorf("transient failure %d", len(attempts))
		}
		require.Equal(t, "retry.me", d.RoutingKey, "a retried delivery keeps its routing key")
		close(succeeded)
		return nil
	})
	b.waitQueue(q)
	require.NoError(t, b.publisher().Publish(testCtx(t), Message{Exchange: b.conn.Config().Exchange, RoutingKey: "retry.me", ID: "r-1", Body: []byte("x")}))
	recv(t, succeeded)
	require.NoError(t, stop())

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1, 2, 3}, seen)
	first, second := attempts[1].Sub(attempts[0]), attempts[2].Sub(attempts[1])
	require.GreaterOrEqual(t, first, 100*time.Millisecond)
	require.Greater(t, second, first, "delays grow: %v then %v", first, second)
	st := b.conn.Stats()
	require.EqualValues(t, 2, st.Retried.Load())
	require.EqualValues(t, 1, st.Handled.Load())
	require.EqualValues(t, 0, st.DeadLettered.Load())
	b.eventuallyDepth(q, 0, "acked exactly once, nothing left")
}

func TestRetriesExhaustedGoToDeadLetters(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("exhaust")
	var calls atomic.Int32
	cs, _ := b.start(ConsumerConfig{
		Name: q, Bindings: []string{"fail.always"}, MaxAttempts: 3,
		Backoff: BackoffConfig{Initial: 10 * time.Millisecond, Multiplier: 2, Max: 20 * time.Millisecond},
	}, func(context.Context, Delivery) error {
		calls.Add(1)
		return errors.New("database down")
	})
	b.waitQueue(q)
	dlq := b.tap(cs.DeadLetterQueue())
	require.NoError(t, b.publisher().Publish(testCtx(t), Message{Exchange: b.conn.Config().Exchange, RoutingKey: "fail.always", ID: "f-1", Body: []byte("x")}))
	dead := recv(t, dlq)
	require.Equal(t, "f-1", dead.MessageId)
	require.EqualValues(t, 3, dead.Headers[HeaderAttempts])
	require.Equal(t, "database down", dead.Headers[HeaderLastError])
	require.Equal(t, "fail.always", dead.Headers[HeaderOriginalRoutingKey])
	require.EqualValues(t, 3, calls.Load())
}

func TestSameMessageIDHandledOnce(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("dedup")
	var mu sync.Mutex
	var ids []string
	sentinel := make(chan struct{})
	b.start(ConsumerConfig{Name: q, Bindings: []string{"dup"}, Prefetch: 1, Concurrency: 1},
		func(_ context.Context, d Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, d.ID)
			if d.ID == "sentinel" {
				close(sentinel)
			}
			return nil
		})
	b.waitQueue(q)
	p := b.publisher()
	for _, id := range []string{"same", "same", "sentinel"} {
		require.NoError(t, p.Publish(testCtx(t), Message{Exchange: b.conn.Config().Exchange, RoutingKey: "dup", ID: id, Body: []byte("x")}))
	}
	recv(t, sentinel)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"same", "sentinel"}, ids)
	require.EqualValues(t, 1, b.conn.Stats().DuplicatesDropped.Load())
}

func TestRequestReply(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	svc := b.name("svc")
	silent := b.name("silent")
	replies := b.publisher()
	b.start(ConsumerConfig{Name: svc}, func(ctx context.Context, d Delivery) error {
		return Reply(ctx, replies, d, Message{ID: "reply-" + d.ID, Body: append([]byte("pong:"), d.Body...)})
	})
	b.waitQueue(svc)
	_, err := b.admin.QueueDeclare(silent, false, true, false, false, nil)
	require.NoError(t, err)

	r, err := b.conn.NewRequester(RequesterConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })

	d, err := r.Request(testCtx(t), svc, Message{ID: "cmd-1", Type: "ledger.open", CorrelationID: "saga-1", Body: []byte("ping")})
	require.NoError(t, err)
	require.Equal(t, "pong:ping", string(d.Body))
	require.Equal(t, "reply-cmd-1", d.ID)
	require.NotEmpty(t, d.CorrelationID)
	require.Equal(t, r.ReplyQueue(), d.Queue)

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = r.Request(ctx, silent, Message{ID: "cmd-2", Body: []byte("ping")})
	require.ErrorIs(t, err, ErrRequestTimeout)

	_, err = r.Request(testCtx(t), b.prefix+".no-such-queue", Message{ID: "cmd-3"})
	require.ErrorIs(t, err, ErrUnroutable)
}

func TestGracefulShutdownWaitsForInFlightHandler(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("shutdown")
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	var calls atomic.Int32
	_, stop := b.start(ConsumerConfig{Name: q, Bindings: []string{"slow"}, Concurrency: 1, Prefetch: 1},
		func(ctx context.Context, _ Delivery) error {
			calls.Add(1)
			close(started)
			<-release
			finished.Store(ctx.Err() == nil)
			return nil
		})
	b.waitQueue(q)
	p := b.publisher()
	m := Message{Exchange: b.conn.Config().Exchange, RoutingKey: "slow", ID: "slow-1", Body: []byte("x")}
	require.NoError(t, p.Publish(testCtx(t), m))
	recv(t, started)

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a handler was in flight")
	case <-time.After(300 * time.Millisecond):
	}
	// Deliveries published during shutdown stay in the queue.
	m.ID = "slow-2"
	require.NoError(t, p.Publish(testCtx(t), m))
	close(release)
	require.NoError(t, recv(t, stopped))
	require.True(t, finished.Load(), "the handler finished with a live context")
	require.EqualValues(t, 1, calls.Load())
	require.Eventually(t, func() bool { return b.depth(q) == 1 }, 5*time.Second, 20*time.Millisecond,
		"the in-flight message was acked and the later one left for the next consumer")
}

func TestConsumingAndNotConsumingReportReadiness(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("ready")
	cs, err := b.conn.NewConsumer(ConsumerConfig{Name: q, Bindings: []string{"ready.#"}},
		func(context.Context, Delivery) error { return nil })
	require.NoError(t, err)
	require.False(t, cs.Consuming())
	require.Empty(t, b.conn.NotConsuming(), "a consumer whose Run was not called is not waited for")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	require.Eventually(t, cs.Consuming, 10*time.Second, 10*time.Millisecond)
	require.Empty(t, b.conn.NotConsuming())
	// Consuming means the queue is bound: a publish is routable at once.
	require.NoError(t, b.publisher().Publish(t.Context(), Message{Exchange: b.conn.Config().Exchange, RoutingKey: "ready.x", ID: "r-1", Body: []byte("{}")}))

	cancel()
	require.NoError(t, <-done)
	require.False(t, cs.Consuming())
	require.Empty(t, b.conn.NotConsuming(), "a stopped consumer is not waited for")
}

func TestInspectQueueReadsDepthWithAPassiveDeclare(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("inspected")
	_, err := b.admin.QueueDeclare(q, false, true, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, b.admin.QueueBind(q, "inspected", b.conn.Config().Exchange, false, nil))
	ex := b.conn.Config().Exchange
	require.NoError(t, b.publisher().PublishBatch(testCtx(t), []Message{
		{Exchange: ex, RoutingKey: "inspected", ID: "1", Body: []byte("x")},
		{Exchange: ex, RoutingKey: "inspected", ID: "2", Body: []byte("x")},
		{Exchange: ex, RoutingKey: "inspected", ID: "3", Body: []byte("x")},
	}))
	d, err := b.conn.InspectQueue(testCtx(t), q)
	require.NoError(t, err)
	require.Equal(t, QueueDepth{Messages: 3}, d)

	_, err = b.conn.InspectQueue(testCtx(t), b.name("missing"))
	require.ErrorContains(t, err, "amqp: inspect queue "+b.name("missing"))
	d, err = b.conn.InspectQueue(testCtx(t), q)
	require.NoError(t, err, "a missing queue closes only the channel that asked")
	require.Equal(t, 3, d.Messages, "inspecting consumed nothing")
}
