// Package commandtest builds commands and reads replies for the tests of the
// participant services, in process (straight into a Processor) or through
// RabbitMQ (request-reply).
package commandtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/store"
)

// Envelope builds a command envelope with a fresh id and a correlation id.
func Envelope(t testing.TB, typ string, p events.Payload) events.Envelope {
	t.Helper()
	env, err := events.New(typ, "test", p, events.WithCorrelationID("saga-"+uuid.NewString()))
	require.NoError(t, err)
	return env
}

// WithData replaces an envelope's data with raw JSON, bypassing validation,
// to build commands that fail it.
func WithData(env events.Envelope, data string) events.Envelope {
	env.Data = json.RawMessage(data)
	return env
}

// Delivery is the delivery of env as the consumer hands it to a handler,
// with a reply-to queue and an AMQP correlation id.
func Delivery(t testing.TB, env events.Envelope) amqp.Delivery {
	t.Helper()
	body, err := json.Marshal(env)
	require.NoError(t, err)
	return amqp.Delivery{Message: amqp.Message{ID: env.ID, Type: env.Type, ReplyTo: "replies",
		CorrelationID: "rpc-" + env.ID, ContentType: events.ContentTypeJSON, Body: body}, Queue: "commands", Attempt: 1}
}

// DeliverInProcess hands env straight to proc, as the command consumer
// would, and returns the reply the service stored in its inbox.
func DeliverInProcess(t testing.TB, proc *command.Processor, db *store.DB, service string, env events.Envelope) events.Reply {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, proc.Deliver(ctx, Delivery(t, env)))
	body, found, err := db.InboxReply(ctx, service, env.ID)
	require.NoError(t, err)
	require.True(t, found, "no stored reply for %s", env.ID)
	_, r, err := events.DecodeAs[events.Reply](body)
	require.NoError(t, err)
	return r
}

// Outbox returns the producer's outbox rows split into replies (decoded)
// and events (envelopes on the event exchange), in creation order.
func Outbox(t testing.TB, db *store.DB, producer string) (replies []events.Reply, published []events.Envelope) {
	t.Helper()
	rows, err := db.Outbox(context.Background(), producer)
	require.NoError(t, err)
	for _, r := range rows {
		env, p, err := events.Decode(r.Message.Body)
		require.NoError(t, err)
		if r.Message.Type == events.TypeCommandReplied {
			replies = append(replies, p.(events.Reply))
			continue
		}
		published = append(published, env)
	}
	return replies, published
}

// Dial connects to the test broker (skipping or failing per testenv) and
// closes the connection when the test ends.
func Dial(t testing.TB) *amqp.Conn {
	t.Helper()
	url := testenv.AMQPURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, amqp.Config{URL: url, ConnectionName: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Requester opens a requester on conn, closed when the test ends.
func Requester(t testing.TB, conn *amqp.Conn) *amqp.Requester {
	t.Helper()
	r, err := conn.NewRequester(amqp.RequesterConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Request sends env to queue and returns the decoded reply and its raw body.
func Request(ctx context.Context, t testing.TB, r *amqp.Requester, queue string, env events.Envelope) (events.Reply, []byte) {
	t.Helper()
	reply, body, err := TryRequest(ctx, r, queue, env)
	require.NoError(t, err)
	return reply, body
}

// TryRequest is Request returning its error, for use off the test goroutine.
func TryRequest(ctx context.Context, r *amqp.Requester, queue string, env events.Envelope) (events.Reply, []byte, error) {
	body, err := json.Marshal(env)
	if err != nil {
		return events.Reply{}, nil, err
	}
	d, err := r.Request(ctx, queue, amqp.Message{ID: env.ID, Type: env.Type, ContentType: events.ContentTypeJSON, Body: body})
	if err != nil {
		return events.Reply{}, nil, err
	}
	_, reply, err := events.DecodeAs[events.Reply](d.Body)
	return reply, d.Body, err
}

// Result unmarshals a reply's Result into T.
func Result[T any](t testing.TB, r events.Reply) T {
	t.Helper()
	var v T
	require.NotEmpty(t, r.Result, "reply has no result")
	require.NoError(t, json.Unmarshal(r.Result, &v))
	return v
}

// Queue is a fresh command-queue name for one test; its queues are deleted
// from the broker when the test ends.
func Queue(t testing.TB, prefix string) string {
	t.Helper()
	q := prefix + ".test-" + uuid.NewString()[:8]
	url := testenv.AMQPURL(t)
	t.Cleanup(func() {
		names := []string{q, q + ".dlq"}
		for _, ms := range []int{200, 400, 800, 1600, 3200, 6400, 10000} {
			names = append(names, fmt.Sprintf("%s.retry.%dms", q, ms))
		}
		DeleteQueues(url, names...)
	})
	return q
}

// DeleteQueues removes queues from the broker, ignoring those that do not
// exist.
func DeleteQueues(url string, names ...string) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, n := range names {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		_, _ = ch.QueueDelete(n, false, false, false)
		_ = ch.Close()
	}
}

// DeadLetter takes one message from the queue's dead-letter queue, waiting
// until ctx ends, and returns its body and its x-last-error header.
func DeadLetter(ctx context.Context, t testing.TB, queue string) (body []byte, lastError string) {
	t.Helper()
	conn, err := amqp091.Dial(testenv.AMQPURL(t))
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	for {
		m, ok, err := ch.Get(queue+".dlq", true)
		require.NoError(t, err)
		if ok {
			s, _ := m.Headers[amqp.HeaderLastError].(string)
			return m.Body, s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no dead letter in %s.dlq: %v", queue, ctx.Err())
		case <-time.After(50 * time.Millisecond):
			// The broker offers no notification for a message arriving in
			// a queue nobody consumes: poll with the context's deadline.
		}
	}
}

// WaitReady sends env until the queue exists and answers, returning the
// first reply; a service declares its queue asynchronously after Run.
func WaitReady(ctx context.Context, t testing.TB, r *amqp.Requester, queue string, env events.Envelope) events.Reply {
	t.Helper()
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		reply, _, err := TryRequest(rctx, r, queue, env)
		cancel()
		if err == nil {
			return reply
		}
		// Unroutable: the queue is not declared yet. Nacked: a quorum
		// queue being declared takes messages only once its leader runs.
		if !(errors.Is(err, amqp.ErrUnroutable) || errors.Is(err, amqp.ErrNacked)) || ctx.Err() != nil {
			t.Fatalf("service on %s never answered: %v", queue, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Publish publishes raw bytes straight to a queue (for malformed commands).
func Publish(ctx context.Context, t testing.TB, conn *amqp.Conn, queue string, m amqp.Message) {
	t.Helper()
	p, err := conn.NewPublisher(amqp.PublisherConfig{})
	require.NoError(t, err)
	defer p.Close()
	m.Exchange, m.RoutingKey = "", queue
	require.NoError(t, p.Publish(ctx, m))
}
