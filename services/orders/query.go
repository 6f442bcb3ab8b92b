package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// Run consumes events into the read model and answers queries until ctx
// ends. It returns nil after a shutdown through ctx, or the first
// consumer's error (after stopping the other).
func (p *Projection) Run(ctx context.Context, conn *amqp.Conn) error {
	projection, queries, pub, err := p.consumers(conn)
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, c := range []*amqp.Consumer{projection, queries} {
		wg.Go(func() {
			errs[i] = c.Run(ctx)
			cancel() // one consumer down stops the other: Run reports it
		})
	}
	wg.Go(func() { p.pruneEvery(ctx) })
	wg.Wait()
	return errors.Join(errs...)
}

// pruneEvery runs Prune every PruneInterval until ctx ends. A failed prune
// is logged and tried again at the next tick: the table only grows meanwhile.
func (p *Projection) pruneEvery(ctx context.Context) {
	if p.cfg.AppliedEventsRetention < 0 {
		return
	}
	tick := time.NewTicker(p.cfg.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Warn("orders: prune applied events failed", "error", err)
			}
		}
	}
}

// consumers builds the projection consumer, the query consumer and the
// publisher of the replies.
func (p *Projection) consumers(conn *amqp.Conn) (projection, queries *amqp.Consumer, pub *amqp.Publisher, err error) {
	projection, err = conn.NewConsumer(amqp.ConsumerConfig{
		Name:        p.cfg.ProjectionQueue,
		Bindings:    []string{"order.*", "inventory.*"},
		Concurrency: p.cfg.Concurrency,
		MaxAttempts: p.cfg.MaxAttempts,
		Backoff:     p.cfg.Backoff,
	}, p.HandleEvent)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("orders: projection consumer: %w", err)
	}
	pub, err = conn.NewPublisher(amqp.PublisherConfig{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("orders: reply publisher: %w", err)
	}
	p.proc.SetReplyPublisher(pub)
	queries, err = conn.NewConsumer(amqp.ConsumerConfig{
		Name:        p.cfg.QueryQueue,
		Concurrency: p.cfg.QueryConcurrency,
		MaxAttempts: p.cfg.MaxAttempts,
		Backoff:     p.cfg.Backoff,
		// A query changes nothing: a repeated id must be answered again,
		// not dropped, or its requester would wait in vain.
		Dedup: amqp.NoDedup{},
	}, p.proc.Deliver)
	if err != nil {
		_ = pub.Close()
		return nil, nil, nil, fmt.Errorf("orders: query consumer: %w", err)
	}
	return projection, queries, pub, nil
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Queue is the read model's query queue. Default
	// contract.OrdersQueryQueue ("orders.queries").
	Queue string
	// Source names the client in the queries' envelopes. Default "orders-client".
	Source string
	// Timeout bounds a query when ctx has no earlier deadline. Default 10s.
	Timeout time.Duration
}

func (c *ClientConfig) setDefaults() {
	if c.Queue == "" {
		c.Queue = contract.OrdersQueryQueue
	}
	if c.Source == "" {
		c.Source = "orders-client"
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c ClientConfig) Validate() error {
	if c.Timeout < 0 {
		return errors.New("orders: client Timeout must not be negative")
	}
	return nil
}

// Client asks the read model over RabbitMQ request-reply, for Go programs
// that hold an amqp.Requester.
type Client struct {
	r   *amqp.Requester
	cfg ClientConfig
}

// NewClient builds a client sending through r.
func NewClient(r *amqp.Requester, cfg ClientConfig) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("orders: nil requester")
	}
	return &Client{r: r, cfg: cfg}, nil
}

// Get returns one order; an unknown order is an error wrapping
// ErrUnknownOrder.
func (c *Client) Get(ctx context.Context, orderID string) (contract.OrderRecord, error) {
	var o contract.OrderRecord
	if err := c.ask(ctx, events.QueryOrdersGet, events.OrdersGetQuery{OrderID: orderID}, &o); err != nil {
		return contract.OrderRecord{}, err
	}
	return o, nil
}

// List returns a customer's orders, newest first.
func (c *Client) List(ctx context.Context, q events.OrdersListQuery) ([]contract.OrderRecord, error) {
	var out []contract.OrderRecord
	if err := c.ask(ctx, events.QueryOrdersList, q, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RejectedError is a query the read model refused.
type RejectedError struct {
	// Query is the query type.
	Query string
	// Reason is the machine-readable reason.
	Reason string
	// Message explains it.
	Message string
}

// Error returns the query, the reason and the message.
func (e *RejectedError) Error() string {
	return fmt.Sprintf("orders: %s rejected: %s: %s", e.Query, e.Reason, e.Message)
}

// Unwrap returns ErrUnknownOrder for an unknown order.
func (e *RejectedError) Unwrap() error {
	if e.Reason == contract.ReasonUnknownOrder {
		return ErrUnknownOrder
	}
	return nil
}

func (c *Client) ask(ctx context.Context, typ string, q events.Payload, result any) error {
	// A payload the responder would dead-letter is refused here, so the
	// caller gets the validation error rather than a timeout.
	env, err := events.New(typ, c.cfg.Source, q)
	if err != nil {
		return fmt.Errorf("orders: %s: %w", typ, err)
	}
	m, err := amqp.MessageFromEnvelope("", env)
	if err != nil {
		return fmt.Errorf("orders: %s: %w", typ, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	d, err := c.r.Request(ctx, c.cfg.Queue, m)
	if err != nil {
		return fmt.Errorf("orders: %s: %w", typ, err)
	}
	_, reply, err := events.DecodeAs[events.Reply](d.Body)
	if err != nil {
		return fmt.Errorf("orders: %s: reply: %w", typ, err)
	}
	if !reply.Accepted() {
		return &RejectedError{Query: typ, Reason: reply.Reason, Message: reply.Message}
	}
	if err := json.Unmarshal(reply.Result, result); err != nil {
		return fmt.Errorf("orders: %s: decode result: %w", typ, err)
	}
	return nil
}
