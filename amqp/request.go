package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

func randomID() string { return uuid.NewString() }

// RequesterConfig configures a Requester.
type RequesterConfig struct {
	// ReplyQueuePrefix starts the name of the requester's exclusive,
	// auto-delete reply queue; a random suffix makes it unique.
	// Default "sagaflow.reply".
	ReplyQueuePrefix string
}

func (c *RequesterConfig) setDefaults() {
	if c.ReplyQueuePrefix == "" {
		c.ReplyQueuePrefix = "sagaflow.reply"
	}
}

// Validate reports every problem of the configuration at once.
func (c RequesterConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if len(c.ReplyQueuePrefix) > 200 {
		errs = append(errs, fmt.Errorf("reply queue prefix is %d bytes, the limit is 200", len(c.ReplyQueuePrefix)))
	}
	return errors.Join(errs...)
}

// Requester sends commands and waits for their replies on its own exclusive
// reply queue, which it re-declares after a reconnection. A reply that
// arrives while the queue is gone is lost and the request times out; a retry
// with the same message id gets the participant's stored reply.
type Requester struct {
	c     *Conn
	pub   *Publisher
	queue string

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	ready   chan struct{} // closed while the reply queue is consumed
	up      bool
	waiting map[string]chan Delivery
}

// NewRequester declares a reply queue and starts consuming it.
func (c *Conn) NewRequester(cfg RequesterConfig) (*Requester, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("requester config: %w", err)
	}
	pub, err := c.NewPublisher(PublisherConfig{})
	if err != nil {
		return nil, fmt.Errorf("requester: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Requester{
		c:       c,
		pub:     pub,
		queue:   cfg.ReplyQueuePrefix + "." + randomID(),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		ready:   make(chan struct{}),
		waiting: make(map[string]chan Delivery),
	}
	go r.run()
	return r, nil
}

// ReplyQueue returns the name of the requester's reply queue.
func (r *Requester) ReplyQueue() string { return r.queue }

// Close stops the requester; its reply queue disappears with its channel.
func (r *Requester) Close() error {
	r.cancel()
	<-r.done
	return r.pub.Close()
}

// Request publishes m to queue on the default exchange with reply-to set to
// the requester's queue and a fresh correlation id (the saga's correlation
// id stays in the envelope), then waits for the matching reply. It returns
// an error wrapping ErrRequestTimeout when ctx ends first, ErrUnroutable
// when no such queue exists.
func (r *Requester) Request(ctx context.Context, queue string, m Message) (Delivery, error) {
	if err := r.waitReady(ctx); err != nil {
		return Delivery{}, fmt.Errorf("request %s to %s: %w", m.ID, queue, err)
	}
	corr := randomID()
	replies := make(chan Delivery, 1)
	r.mu.Lock()
	r.waiting[corr] = replies
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, corr)
		r.mu.Unlock()
	}()
	m.Exchange, m.RoutingKey = "", queue
	m.ReplyTo, m.CorrelationID = r.queue, corr
	if err := r.pub.Publish(ctx, m); err != nil {
		if ctx.Err() != nil {
			return Delivery{}, fmt.Errorf("request %s to %s: %w: %w", m.ID, queue, ErrRequestTimeout, err)
		}
		return Delivery{}, fmt.Errorf("request %s to %s: %w", m.ID, queue, err)
	}
	select {
	case d := <-replies:
		return d, nil
	case <-ctx.Done():
		return Delivery{}, fmt.Errorf("request %s to %s: %w: %w", m.ID, queue, ErrRequestTimeout, ctx.Err())
	case <-r.done:
		return Delivery{}, fmt.Errorf("request %s to %s: %w", m.ID, queue, ErrClosed)
	}
}

func (r *Requester) waitReady(ctx context.Context) error {
	for {
		r.mu.Lock()
		up, ready := r.up, r.ready
		r.mu.Unlock()
		if up {
			return nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for the reply queue: %w", ErrRequestTimeout, ctx.Err())
		case <-r.done:
			return ErrClosed
		}
	}
}

func (r *Requester) run() {
	defer close(r.done)
	for attempt := 1; ; attempt++ {
		if err := r.session(); err != nil && r.ctx.Err() == nil {
			if sleepCtx(r.ctx, r.c.done, r.c.backoff(attempt)) != nil {
				return
			}
			continue
		}
		if r.ctx.Err() != nil || r.c.closed() {
			return
		}
		attempt = 0
	}
}

// session declares and consumes the reply queue on one channel until it
// closes or the requester is closed.
func (r *Requester) session() error {
	ch, err := r.c.channel(r.ctx)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	lost := ch.NotifyClose(make(chan *amqp091.Error, 1))
	// The reply queue lives and dies with this process, so it is exclusive
	// and auto-delete, which quorum queues cannot be: it stays classic
	// whatever Config.QueueType says. Replies lost with it are recovered by
	// the request's retry (see Requester).
	if _, err := ch.QueueDeclare(r.queue, false, true, true, false, amqp091.Table{"x-queue-type": QueueClassic}); err != nil {
		return fmt.Errorf("declare reply queue %s: %w", r.queue, err)
	}
	deliveries, err := ch.Consume(r.queue, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume reply queue %s: %w", r.queue, err)
	}
	r.mu.Lock()
	r.up = true
	close(r.ready)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.up = false
		r.ready = make(chan struct{})
		r.mu.Unlock()
	}()
	for {
		select {
		case <-r.ctx.Done():
			return nil
		case <-lost:
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return nil
			}
			r.c.stats.Consumed.Add(1)
			// The reply's consumer span continues the trace its
			// publisher sent it in; the requester's caller goes on
			// within its own span.
			_, span := startProcess(r.ctx, d, r.queue)
			r.mu.Lock()
			w := r.waiting[d.CorrelationId]
			delete(r.waiting, d.CorrelationId)
			r.mu.Unlock()
			if w != nil {
				w <- toDelivery(d, r.queue)
			}
			span.End()
		}
	}
}

// Reply publishes reply to the requester of req: on the default exchange to
// req.ReplyTo, with req's correlation id. It returns ErrUnroutable when the
// requester's queue is gone (the requester then times out and retries).
func Reply(ctx context.Context, p *Publisher, req Delivery, reply Message) error {
	if req.ReplyTo == "" {
		return fmt.Errorf("reply to %s: request has no reply-to", req.ID)
	}
	reply.Exchange, reply.RoutingKey = "", req.ReplyTo
	reply.CorrelationID = req.CorrelationID
	if err := p.Publish(ctx, reply); err != nil {
		return fmt.Errorf("reply to %s: %w", req.ID, err)
	}
	return nil
}
