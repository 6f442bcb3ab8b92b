package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Broker is a RabbitMQ scratch area for one test: exchanges of its own, so
// that events published by other tests never reach its queues, and a list
// of queues deleted with the exchanges when the test ends.
type Broker struct {
	// URL is the broker's URL.
	URL string
	// Prefix starts every name the test uses ("test.<random>").
	Prefix string
	// Exchange is the test's event exchange (pass it as amqp.Config.Exchange).
	Exchange string
	// DeadLetterExchange is the test's dead-letter exchange (pass it as
	// amqp.Config.DeadLetterExchange).
	DeadLetterExchange string

	t      testing.TB
	mu     sync.Mutex
	queues []string
}

// NewBroker returns a scratch area on the broker AMQPURL finds, skipping
// the test (failing it in CI) when RabbitMQ is unavailable.
func NewBroker(t testing.TB) *Broker {
	t.Helper()
	url := AMQPURL(t)
	prefix := "test." + uuid.NewString()[:8]
	b := &Broker{
		URL: url, Prefix: prefix,
		Exchange: prefix + ".events", DeadLetterExchange: prefix + ".dlx",
		t: t,
	}
	t.Cleanup(b.cleanup)
	return b
}

// Name returns a queue name unique to the test; the queue and the retry
// and dead-letter queues an amqp.Consumer derives from it are deleted when
// the test ends.
func (b *Broker) Name(role string) string {
	n := b.Prefix + "." + role
	b.mu.Lock()
	b.queues = append(b.queues, n)
	b.mu.Unlock()
	return n
}

// DeleteAtEnd deletes queues when the test ends, for example the retry
// queues of a consumer with its own backoff (amqp.Consumer.Queues).
func (b *Broker) DeleteAtEnd(queues ...string) {
	b.mu.Lock()
	b.queues = append(b.queues, queues...)
	b.mu.Unlock()
}

// DeadLetters consumes the dead-letter queue of the consumer named name
// ("<name>.dlq") with a client of its own, auto-acking, until the test ends.
// It waits for the queue to exist, that is for the consumer to have started.
func (b *Broker) DeadLetters(name string) <-chan amqp091.Delivery {
	b.t.Helper()
	queue := name + ".dlq"
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds, err := b.consume(queue)
		if err == nil {
			return ds
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("testenv: consume %s within 15s: %v", queue, err)
		}
		time.Sleep(20 * time.Millisecond) // the broker offers no notification of a declared queue
	}
}

// consume reads queue, auto-acking, on a connection of its own closed when
// the test ends. The queue must exist, and a quorum queue must have started:
// one declared a moment ago by another connection can be listed before its
// replica runs, and consuming it then fails the whole connection.
func (b *Broker) consume(queue string) (<-chan amqp091.Delivery, error) {
	conn, err := amqp091.Dial(b.URL)
	if err != nil {
		b.t.Fatalf("testenv: dial %s: %v", b.URL, err)
	}
	ch, err := conn.Channel()
	if err == nil {
		_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	}
	if err == nil {
		// A quorum queue refuses a consumer without a prefetch limit.
		err = ch.Qos(256, 0, false)
	}
	var ds <-chan amqp091.Delivery
	if err == nil {
		ds, err = ch.Consume(queue, "", true, false, false, false, nil)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	b.t.Cleanup(func() { _ = conn.Close() })
	return ds, nil
}

// WaitConsumer waits until a consumer reads queue name, so that a message
// published now reaches it.
func (b *Broker) WaitConsumer(name string) {
	b.t.Helper()
	conn, err := amqp091.Dial(b.URL)
	if err != nil {
		b.t.Fatalf("testenv: dial %s: %v", b.URL, err)
	}
	defer func() { _ = conn.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ch, err := conn.Channel()
		if err != nil {
			b.t.Fatalf("testenv: channel: %v", err)
		}
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err == nil {
			_ = ch.Close()
			if q.Consumers > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("testenv: no consumer on %s within 15s", name)
		}
		time.Sleep(20 * time.Millisecond) // polling: the broker offers no notification
	}
}

func (b *Broker) cleanup() {
	conn, err := amqp091.Dial(b.URL)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	del := func(f func(ch *amqp091.Channel) error) {
		if ctx.Err() != nil {
			return
		}
		// Every failed deletion closes its channel: one channel per call.
		if ch, err := conn.Channel(); err == nil {
			_ = f(ch)
			_ = ch.Close()
		}
	}
	b.mu.Lock()
	names := append([]string(nil), b.queues...)
	b.mu.Unlock()
	for _, n := range names {
		for _, q := range derivedQueues(n) {
			del(func(ch *amqp091.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
		}
	}
	del(func(ch *amqp091.Channel) error { return ch.ExchangeDelete(b.Exchange, false, false) })
	del(func(ch *amqp091.Channel) error { return ch.ExchangeDelete(b.DeadLetterExchange, false, false) })
}

// derivedQueues lists a consumer queue with its dead-letter queue and the
// retry queues of the default backoff (200ms, ×2, max 10s).
func derivedQueues(name string) []string {
	qs := []string{name, name + ".dlq"}
	for _, ms := range []int{200, 400, 800, 1600, 3200, 6400, 10000} {
		qs = append(qs, fmt.Sprintf("%s.retry.%dms", name, ms))
	}
	return qs
}
