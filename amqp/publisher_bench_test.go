package amqp

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/sagaflow/sagaflow/internal/testenv"
)

// BenchmarkPublish measures confirmed messages per second (512-byte
// persistent payloads) into a classic and into a quorum queue with 1, 8
// and 64 concurrent publishers, for the Publisher and, side by side, for
// raw amqp091-go waiting for each confirm before the next publish and raw
// amqp091-go with pipelined confirms. Sub-benchmarks are named
// queue=TYPE/publishers=N/VARIANT.
func BenchmarkPublish(b *testing.B) {
	url := testenv.AMQPURL(b)
	prefix := "bench." + uuid.NewString()[:8]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Dial(ctx, Config{URL: url, Exchange: prefix + ".events", DeadLetterExchange: prefix + ".dlx"})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	raw, err := amqp091.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = raw.Close() }()
	admin, err := raw.Channel()
	if err != nil {
		b.Fatal(err)
	}
	exchange := prefix + ".events"
	// One queue per type, each bound to its own routing key.
	queueTypes := []string{QueueClassic, QueueQuorum}
	for _, typ := range queueTypes {
		queue := prefix + ".sink." + typ
		if _, err := admin.QueueDeclare(queue, true, false, false, false, amqp091.Table{"x-queue-type": typ}); err != nil {
			b.Fatal(err)
		}
		if err := admin.QueueBind(queue, "bench."+typ, exchange, false, nil); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, typ := range queueTypes {
			_, _ = admin.QueueDelete(prefix+".sink."+typ, false, false, false)
		}
		_ = admin.ExchangeDelete(exchange, false, false)
		_ = admin.ExchangeDelete(prefix+".dlx", false, false)
	}()

	body := make([]byte, 512)
	pub, err := conn.NewPublisher(PublisherConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = pub.Close() }()

	rawPublish := func(serial bool) func(b *testing.B, key string) func(context.Context) error {
		return func(b *testing.B, key string) func(context.Context) error {
			ch, err := raw.Channel()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ch.Close() })
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			msg := amqp091.Publishing{DeliveryMode: amqp091.Persistent, ContentType: "application/octet-stream", Body: body}
			return func(ctx context.Context) error {
				if serial {
					mu.Lock()
					defer mu.Unlock()
				}
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
				if err != nil {
					return err
				}
				ok, err := dc.WaitContext(ctx)
				if err != nil {
					return err
				}
				if !ok {
					return ErrNacked
				}
				return nil
			}
		}
	}
	variants := []struct {
		name  string
		setup func(b *testing.B, key string) func(context.Context) error
	}{
		{"publisher", func(_ *testing.B, key string) func(context.Context) error {
			var seq atomic.Int64
			return func(ctx context.Context) error {
				return pub.Publish(ctx, Message{Exchange: exchange, RoutingKey: key, ID: fmt.Sprint(seq.Add(1)), ContentType: "application/octet-stream", Body: body})
			}
		}},
		{"raw-wait-each", rawPublish(true)},
		{"raw-pipelined", rawPublish(false)},
	}
	for _, typ := range queueTypes {
		for _, publishers := range []int{1, 8, 64} {
			for _, v := range variants {
				b.Run(fmt.Sprintf("queue=%s/publishers=%d/%s", typ, publishers, v.name), func(b *testing.B) {
					publish := v.setup(b, "bench."+typ)
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ResetTimer()
					start := time.Now()
					for range publishers {
						wg.Go(func() {
							for next.Add(1) <= int64(b.N) {
								if err := publish(context.Background()); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					elapsed := time.Since(start)
					b.StopTimer()
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
					if _, err := admin.QueuePurge(prefix+".sink."+typ, false); err != nil {
						b.Fatal(err)
					}
				})
			}
		}
	}
}
