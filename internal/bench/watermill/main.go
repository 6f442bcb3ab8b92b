// Command watermill is the benchmark's peer row for the publisher:
// Watermill's AMQP publisher (github.com/ThreeDotsLabs/watermill-amqp/v3)
// publishing what BenchmarkPublish in ./amqp publishes, 512-byte persistent
// messages with the mandatory flag and publisher confirms, through a
// durable topic exchange into a classic and into a quorum queue, with 1, 8
// and 64 goroutines at once. It prints one line per case in the format of
// `go test -bench` (queue=TYPE/publishers=N/watermill), which the
// benchmark (`go run ./internal/bench`) reads and puts beside the
// project's publisher and raw amqp091-go.
//
// It is a module of its own so that Watermill stays out of the project's
// go.mod; the benchmark runs it with `go run .` in this directory.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "watermill: %v\n", err)
		os.Exit(1)
	}
}

// config is what one run measures.
type config struct {
	url        string
	messages   int
	publishers []int
	queues     []string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("watermill", flag.ContinueOnError)
	url := "amqp://guest:guest@127.0.0.1:5672/"
	if v := os.Getenv("AMQP_URL"); v != "" {
		url = v
	}
	fs.StringVar(&c.url, "amqp-url", url, "RabbitMQ URL (env AMQP_URL)")
	fs.IntVar(&c.messages, "messages", 5000, "messages per case")
	publishers := fs.String("publishers", "1,8,64", "comma-separated goroutine counts publishing at once")
	queues := fs.String("queues", "classic,quorum", "comma-separated queue types")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if c.messages <= 0 {
		errs = append(errs, fmt.Errorf("--messages %d: must be positive", c.messages))
	}
	for _, f := range strings.Split(*publishers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("--publishers: %q is not a positive count", f))
			continue
		}
		c.publishers = append(c.publishers, n)
	}
	for _, q := range strings.Split(*queues, ",") {
		switch q = strings.TrimSpace(q); q {
		case "classic", "quorum":
			c.queues = append(c.queues, q)
		default:
			errs = append(errs, fmt.Errorf("--queues: %q is not classic or quorum", q))
		}
	}
	return c, errors.Join(errs...)
}

func run(args []string, out io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return err
	}
	prefix := "bench.watermill." + hex.EncodeToString(suffix)
	exchange := prefix + ".events"

	admin, err := amqp091.Dial(c.url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = admin.Close() }()
	ch, err := admin.Channel()
	if err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		return err
	}
	defer func() { _, _ = ch.QueueDelete(prefix+".sink.classic", false, false, false) }()
	defer func() { _, _ = ch.QueueDelete(prefix+".sink.quorum", false, false, false) }()
	defer func() { _ = ch.ExchangeDelete(exchange, false, false) }()
	for _, typ := range c.queues {
		queue := prefix + ".sink." + typ
		if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp091.Table{"x-queue-type": typ}); err != nil {
			return err
		}
		if err := ch.QueueBind(queue, "bench."+typ, exchange, false, nil); err != nil {
			return err
		}
	}

	body := make([]byte, 512)
	for _, typ := range c.queues {
		for _, n := range c.publishers {
			rate, err := measure(c.url, exchange, "bench."+typ, n, c.messages, body)
			if err != nil {
				return fmt.Errorf("queue %s, %d publishers: %w", typ, n, err)
			}
			fmt.Fprintf(out, "BenchmarkPublish/queue=%s/publishers=%d/watermill \t%d\t%.0f ns/op\t%.0f msgs/s\n",
				typ, n, c.messages, 1e9/rate, rate)
			if _, err := ch.QueuePurge(prefix+".sink."+typ, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// measure publishes messages with n goroutines through one Watermill
// publisher whose channel pool has a channel per goroutine, and returns
// the confirmed messages per second.
func measure(url, exchange, routingKey string, n, messages int, body []byte) (float64, error) {
	cfg := wamqp.Config{
		Connection: wamqp.ConnectionConfig{AmqpURI: url},
		Marshaler:  wamqp.DefaultMarshaler{}, // persistent delivery
		Exchange: wamqp.ExchangeConfig{
			GenerateName: func(string) string { return exchange },
			Type:         "topic",
			Durable:      true,
		},
		Publish: wamqp.PublishConfig{
			GenerateRoutingKey: func(string) string { return routingKey },
			Mandatory:          true,
			ConfirmDelivery:    true,
			ChannelPoolSize:    n,
		},
		TopologyBuilder: &wamqp.DefaultTopologyBuilder{},
	}
	pub, err := wamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	defer func() { _ = pub.Close() }()
	// One uncounted message declares the exchange and opens the way.
	if err := pub.Publish("bench", message.NewMessage(watermill.NewUUID(), body)); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	start := time.Now()
	for range n {
		wg.Go(func() {
			for next.Add(1) <= int64(messages) {
				msg := message.NewMessage(watermill.NewUUID(), body)
				msg.SetContext(ctx)
				if err := pub.Publish("bench", msg); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return 0, first
	}
	return float64(messages) / elapsed.Seconds(), nil
}
