package amqp

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/testenv"
)

// rabbitmqctl runs the broker's admin tool, which the connection-drop tests
// need; without it they skip (or fail in CI).
func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	require.NoError(t, err, "rabbitmqctl %v: %s", args, out)
}

// isolatedVhost creates a vhost for one test, so that closing its
// connections disturbs no other client of the broker, and returns its URL.
func isolatedVhost(t *testing.T) (vhost, vhostURL string) {
	t.Helper()
	base := testenv.AMQPURL(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl", "install RabbitMQ's CLI tools and put rabbitmqctl on PATH")
	}
	vhost = "sagaflow-test-" + uuid.NewString()[:8]
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "delete_vhost", vhost).Run() })
	u, err := url.Parse(base)
	require.NoError(t, err)
	rabbitmqctl(t, "set_permissions", "-p", vhost, u.User.Username(), ".*", ".*", ".*")
	u.Path = "/" + vhost
	return vhost, u.String()
}

// TestNoMessageLostAcrossDroppedConnections publishes 10,000 messages from
// 50 goroutines, each retrying its message until Publish returns nil as a
// retried activity would, while every connection of the vhost is closed
// twice. Every message is handled exactly once; the duplicates that retries
// and redeliveries caused are dropped by the dedup store.
func TestNoMessageLostAcrossDroppedConnections(t *testing.T) {
	vhost, vurl := isolatedVhost(t)
	b := newTestBroker(t, vurl)
	q := b.name("drop")
	const publishers, perPublisher = 50, 200
	const total = publishers * perPublisher

	var mu sync.Mutex
	handled := make(map[string]int, total)
	cs, stop := b.start(ConsumerConfig{Name: q, Bindings: []string{"drop.#"}, Prefetch: 128, Concurrency: 8},
		func(_ context.Context, d Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			handled[d.ID]++
			return nil
		})
	b.waitQueue(q)

	p := b.publisher()
	var next, published, failures atomic.Int64
	drops := []int64{total / 5, total * 3 / 5}
	reached := []chan struct{}{make(chan struct{}), make(chan struct{})}
	dropped := make(chan struct{})
	go func() {
		defer close(dropped)
		for _, r := range reached {
			<-r
			rabbitmqctl(t, "close_all_connections", "-p", vhost, "connection-drop test")
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Publishing goes on past the quota until both drops are done, so that
	// publishes are always in flight when the connection is closed.
	more := func(i int64) bool {
		if i < total {
			return true
		}
		select {
		case <-dropped:
			return false
		default:
			return true
		}
	}
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for i := next.Add(1) - 1; more(i); i = next.Add(1) - 1 {
				m := Message{Exchange: b.conn.Config().Exchange, RoutingKey: "drop.test", ID: fmt.Sprintf("m-%d", i), Body: []byte("payload")}
				for {
					err := p.Publish(ctx, m)
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						t.Errorf("publish %s: %v", m.ID, err)
						return
					}
					failures.Add(1)
				}
				n := published.Add(1)
				for k, at := range drops {
					if n == at {
						close(reached[k])
					}
				}
			}
		})
	}
	wg.Wait()
	<-dropped
	sent := published.Load()
	require.GreaterOrEqual(t, sent, int64(total))

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return int64(len(handled)) == sent
	}, time.Minute, 20*time.Millisecond, "every confirmed message is consumed")

	// Let redelivered copies still in the queues drain before counting.
	require.Eventually(t, func() bool { return b.depth(q) == 0 && b.depth(cs.RetryQueue(1)) == 0 },
		30*time.Second, 50*time.Millisecond)
	require.NoError(t, stop())

	mu.Lock()
	defer mu.Unlock()
	require.EqualValues(t, sent, len(handled))
	for id, n := range handled {
		require.Equal(t, 1, n, "message %s handled %d times", id, n)
	}
	st := b.conn.Stats()
	require.GreaterOrEqual(t, st.Reconnects.Load(), int64(2))
	require.Equal(t, sent, st.Handled.Load())
	require.Equal(t, st.Consumed.Load(), st.Handled.Load()+st.DuplicatesDropped.Load()+st.Deferred.Load(),
		"every delivery was handled once, dropped as a duplicate or deferred")
	t.Logf("published %d, publish retries %d, reconnects %d, deliveries %d, duplicates dropped %d, deferred %d",
		sent, failures.Load(), st.Reconnects.Load(), st.Consumed.Load(), st.DuplicatesDropped.Load(), st.Deferred.Load())
}

func TestConnectedReflectsConnectionState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{URL: testenv.AMQPURL(t), ConnectionName: "connected-test"})
	require.NoError(t, err)
	require.True(t, c.Connected())
	require.NoError(t, c.Close())
	require.False(t, c.Connected(), "a closed Conn is not connected")
}
