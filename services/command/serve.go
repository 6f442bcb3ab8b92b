package command

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/services/store"
)

// ServeConfig configures the consumer and the relay Serve runs for a
// processor.
type ServeConfig struct {
	// Queue is the durable command queue, for example "ledger.commands".
	// Commands are sent to it directly on the default exchange. Required.
	Queue string
	// Concurrency is the number of commands handled at once. Default 16.
	Concurrency int
	// Prefetch is the number of unacked commands the broker sends ahead.
	// Default 4 × Concurrency.
	Prefetch int
	// MaxAttempts is the number of attempts at a command that fails with an
	// error (a database outage) before it is dead-lettered. Default 5.
	MaxAttempts int
	// Relay configures the outbox relay; its Producer is the processor's
	// service name.
	Relay store.RelayConfig
}

func (c *ServeConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Prefetch == 0 {
		c.Prefetch = 4 * c.Concurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
}

// Validate reports every problem with the configuration.
func (c ServeConfig) Validate() error {
	var errs []error
	if c.Queue == "" {
		errs = append(errs, errors.New("command: Queue is required"))
	}
	if c.Concurrency < 0 || c.Prefetch < 0 || c.MaxAttempts < 0 {
		errs = append(errs, errors.New("command: Concurrency, Prefetch and MaxAttempts must not be negative"))
	}
	return errors.Join(errs...)
}

// Server is a running command processor: the consumer of its queue and
// the relay of its outbox.
type Server struct {
	proc     *Processor
	consumer *amqp.Consumer
	relay    *store.Relay
	pub      *amqp.Publisher
}

// NewServer wires a processor to a connection: a publisher (query replies and
// the relay), the queue's consumer and the outbox relay.
func NewServer(conn *amqp.Conn, db *store.DB, proc *Processor, cfg ServeConfig) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pub, err := conn.NewPublisher(amqp.PublisherConfig{})
	if err != nil {
		return nil, fmt.Errorf("%s: publisher: %w", proc.Service(), err)
	}
	rcfg := cfg.Relay
	rcfg.Producer = proc.Service()
	relay, err := store.NewRelay(db, relayPublisher{pub}, rcfg)
	if err != nil {
		_ = pub.Close()
		return nil, err
	}
	proc.SetReplyPublisher(pub)
	consumer, err := conn.NewConsumer(amqp.ConsumerConfig{
		Name:        cfg.Queue,
		Prefetch:    cfg.Prefetch,
		Concurrency: cfg.Concurrency,
		MaxAttempts: cfg.MaxAttempts,
		// The inbox is the deduplication of commands: a repeated command id
		// must reach the handler so that its stored reply is sent again.
		Dedup: amqp.NoDedup{},
	}, proc.Deliver)
	if err != nil {
		_ = pub.Close()
		return nil, err
	}
	return &Server{proc: proc, consumer: consumer, relay: relay, pub: pub}, nil
}

// Relay returns the server's outbox relay.
func (s *Server) Relay() *store.Relay { return s.relay }

// Consumer returns the server's command consumer.
func (s *Server) Consumer() *amqp.Consumer { return s.consumer }

// Run consumes commands and relays the outbox until ctx ends. It returns nil
// after a shutdown through ctx, or the consumer's error.
func (s *Server) Run(ctx context.Context) error {
	defer func() { _ = s.pub.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		relayErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		relayErr = s.relay.Run(ctx)
	}()
	err := s.consumer.Run(ctx)
	cancel()
	wg.Wait()
	// Replies written by the last handlers are still pending: give the relay
	// one bounded chance to send them before the publisher closes.
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	_, _ = s.relay.Flush(fctx)
	return errors.Join(err, relayErr)
}
