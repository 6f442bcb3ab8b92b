package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/testenv"
)

func deadLetterIDs(dls []DeadLetter) []string {
	ids := make([]string, len(dls))
	for i, d := range dls {
		ids[i] = d.ID
	}
	return ids
}

// deadLetterSetup runs a consumer that dead-letters every message until
// healed, publishes five messages and waits until all five are dead letters.
func deadLetterSetup(t *testing.T) (b *testBroker, queue string, healed *atomic.Bool, handled chan Delivery) {
	b = newTestBroker(t, testenv.AMQPURL(t))
	queue = b.name("dl")
	healed = &atomic.Bool{}
	handled = make(chan Delivery, 16)
	// One handler at a time, so the dead letters are in publish order.
	b.start(ConsumerConfig{Name: queue, Bindings: []string{"dl.#"}, MaxAttempts: 1, Concurrency: 1}, func(_ context.Context, d Delivery) error {
		if !healed.Load() {
			return Permanent(fmt.Errorf("cannot handle %s yet", d.ID))
		}
		handled <- d
		return nil
	})
	b.waitQueue(queue)
	p := b.publisher()
	for i := 1; i <= 5; i++ {
		require.NoError(t, p.Publish(testCtx(t), Message{
			Exchange: b.conn.Config().Exchange, RoutingKey: fmt.Sprintf("dl.key.%d", i),
			ID: fmt.Sprintf("m%d", i), Type: "dl.test", Body: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Headers: map[string]any{"tenant": "acme"},
		}))
	}
	// The consumer moves them through its publisher: poll the queue, the
	// broker offers no notification.
	require.Eventually(t, func() bool { return b.depth(queue+".dlq") == 5 }, 15*time.Second, 20*time.Millisecond)
	return b, queue, healed, handled
}

func TestListDeadLettersBrowsesWithoutLosingOrReordering(t *testing.T) {
	b, queue, _, _ := deadLetterSetup(t)
	ctx := testCtx(t)

	first, err := b.conn.ListDeadLetters(ctx, queue, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"m1", "m2", "m3"}, deadLetterIDs(first))
	d := first[1]
	require.Equal(t, queue, d.Consumer)
	require.Equal(t, queue+".dlq", d.Queue)
	require.Equal(t, 2, d.Position)
	require.Equal(t, "permanent: cannot handle m2 yet", d.LastError)
	require.Equal(t, 1, d.Attempts)
	require.Equal(t, b.conn.Config().Exchange, d.OriginalExchange)
	require.Equal(t, "dl.key.2", d.OriginalRoutingKey)
	require.Equal(t, `{"n":2}`, string(d.Body))
	require.Equal(t, "acme", d.Headers["tenant"])

	// Browsing twice, by either queue name, sees the same messages in the
	// same order: the first browse put everything back.
	all, err := b.conn.ListDeadLetters(ctx, queue+".dlq", 0)
	require.NoError(t, err)
	require.Equal(t, []string{"m1", "m2", "m3", "m4", "m5"}, deadLetterIDs(all))
	b.eventuallyDepth(queue+".dlq", 5, "every message is back in the dead-letter queue")
}

func TestRedriveSendsChosenMessagesBackToTheirConsumer(t *testing.T) {
	b, queue, healed, handled := deadLetterSetup(t)
	ctx := testCtx(t)
	healed.Store(true)

	res, err := b.conn.Redrive(ctx, queue, []string{"m4", "m2", "missing"})
	require.NoError(t, err)
	require.Equal(t, []string{"m2", "m4"}, res.Redriven, "in queue order")
	require.Equal(t, []string{"missing"}, res.NotFound)

	got := map[string]Delivery{}
	for range 2 {
		d := recv(t, handled)
		got[d.ID] = d
	}
	require.Contains(t, got, "m2")
	require.Contains(t, got, "m4")
	d := got["m2"]
	require.Equal(t, 1, d.Attempt, "a redriven message gets a fresh set of attempts")
	require.Equal(t, "dl.key.2", d.RoutingKey, "the consumer sees the original routing key")
	require.Equal(t, b.conn.Config().Exchange, d.Exchange)
	require.EqualValues(t, 1, d.Headers[HeaderRedrives])
	require.NotContains(t, d.Headers, HeaderLastError)
	require.Equal(t, `{"n":2}`, string(d.Body))

	rest, err := b.conn.ListDeadLetters(ctx, queue, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"m1", "m3", "m5"}, deadLetterIDs(rest), "the others keep their order")

	res, err = b.conn.RedriveAll(ctx, queue)
	require.NoError(t, err)
	require.Equal(t, []string{"m1", "m3", "m5"}, res.Redriven)
	for range 3 {
		recv(t, handled)
	}
	rest, err = b.conn.ListDeadLetters(ctx, queue, 0)
	require.NoError(t, err)
	require.Empty(t, rest)
}

func TestRedriveKeepsAMessageItCannotSend(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	queue := b.name("orphan")
	// A dead-letter queue whose consumer queue is gone: the send back is
	// unroutable, and the message must stay where it is.
	p := b.publisher()
	ch := b.admin
	_, err := ch.QueueDeclare(queue+".dlq", true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, p.Publish(testCtx(t), Message{RoutingKey: queue + ".dlq", ID: "lost?", Body: []byte("x"),
		Headers: map[string]any{HeaderAttempts: int64(5), HeaderLastError: "boom"}}))

	_, err = b.conn.Redrive(testCtx(t), queue, []string{"lost?"})
	require.ErrorIs(t, err, ErrUnroutable)
	left, err := b.conn.ListDeadLetters(testCtx(t), queue, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"lost?"}, deadLetterIDs(left))
	require.Equal(t, "boom", left[0].LastError)
	require.Equal(t, 5, left[0].Attempts)
}

func TestDeadLetterErrors(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	ctx := testCtx(t)
	_, err := b.conn.ListDeadLetters(ctx, b.prefix+".nosuch", 0)
	require.ErrorContains(t, err, "does not exist")
	_, err = b.conn.ListDeadLetters(ctx, "", 0)
	require.ErrorContains(t, err, "queue name is required")
	_, err = b.conn.ListDeadLetters(ctx, "q", -1)
	require.ErrorContains(t, err, "negative")
	_, err = b.conn.Redrive(ctx, "q", nil)
	require.ErrorContains(t, err, "no message ids")
	require.False(t, errors.Is(err, ErrUnroutable))
}
