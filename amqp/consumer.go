package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Header names the consumer writes on retried and dead-lettered messages.
const (
	// HeaderAttempts is the number of handler attempts made so far.
	HeaderAttempts = "x-attempts"
	// HeaderLastError is the last handler (or decoder) error.
	HeaderLastError = "x-last-error"
	// HeaderOriginalRoutingKey is the routing key the message was first
	// published with.
	HeaderOriginalRoutingKey = "x-original-routing-key"
	// HeaderOriginalExchange is the exchange the message was first published
	// to.
	HeaderOriginalExchange = "x-original-exchange"
)

// BackoffConfig is the exponential delay between handler attempts.
type BackoffConfig struct {
	// Initial is the delay before the second attempt. Default 200ms.
	Initial time.Duration
	// Multiplier grows the delay after each attempt. Default 2.
	Multiplier float64
	// Max caps the delay. Default 10s.
	Max time.Duration
}

// Delay returns the delay after the attempt-th failed attempt (1-based),
// rounded to the millisecond because queue TTLs are in milliseconds.
func (b BackoffConfig) Delay(attempt int) time.Duration {
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt-1))
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	return time.Duration(d).Round(time.Millisecond)
}

// ConsumerConfig configures a Consumer and its queues.
type ConsumerConfig struct {
	// Name is the durable queue the consumer reads. Its dead letters go to
	// "<Name>.dlq" and its retries wait in "<Name>.retry.<delay>ms". Required.
	Name string
	// Exchange is the exchange Bindings bind to. Default the Conn's
	// exchange ("sagas.events"). Without Bindings the queue receives only
	// messages sent to it directly on the default exchange.
	Exchange string
	// Bindings are the routing-key patterns ("funds.*", "order.#") the queue
	// is bound with.
	Bindings []string
	// Prefetch is the number of unacked deliveries the broker sends ahead.
	// Default 32.
	Prefetch int
	// Concurrency is the number of handlers running at once. Default 8.
	Concurrency int
	// MaxAttempts is the number of handler attempts before a message is
	// dead-lettered. Default 5.
	MaxAttempts int
	// Backoff is the delay between attempts. Defaults: 200ms, ×2, max 10s.
	Backoff BackoffConfig
	// Dedup remembers handled message ids. Default NewMemoryDedup(0): the
	// last DefaultDedupCapacity ids, in memory.
	Dedup DedupStore
	// DedupWindow is how long a handled id is remembered at most; the
	// default store forgets sooner once more than DefaultDedupCapacity
	// ids came within it. Default 24h.
	DedupWindow time.Duration
	// Decoder, when set, checks each delivery before the handler; a
	// delivery it rejects is dead-lettered at once. Use DecodeEnvelope for
	// envelope queues.
	Decoder func(Delivery) error
	// ShutdownTimeout is how long Run waits for in-flight handlers after
	// its context ends before cancelling their context. Default 30s.
	ShutdownTimeout time.Duration
	// Logger records what the consumer cannot report to a caller: retries,
	// dead letters, and failed acks, nacks, publishes and channel closes,
	// each with the delivery's message id and the queue's name. Default
	// the Conn's logger (Config.Logger).
	Logger *slog.Logger
}

func (c *ConsumerConfig) setDefaults(conn Config) {
	if c.Exchange == "" {
		c.Exchange = conn.Exchange
	}
	if c.Prefetch == 0 {
		c.Prefetch = 32
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff.Initial == 0 {
		c.Backoff.Initial = 200 * time.Millisecond
	}
	if c.Backoff.Multiplier == 0 {
		c.Backoff.Multiplier = 2
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = 10 * time.Second
	}
	if c.Dedup == nil {
		c.Dedup = NewMemoryDedup(0)
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 24 * time.Hour
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = conn.Logger
	}
}

// Validate reports every problem of the configuration at once. Unset fields
// are checked with their defaults applied.
func (c ConsumerConfig) Validate() error {
	c.setDefaults(Config{Exchange: DefaultExchange})
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if strings.HasPrefix(c.Name, "amq.") {
		errs = append(errs, fmt.Errorf("name %q uses the reserved amq. prefix", c.Name))
	}
	if c.Prefetch < 1 {
		errs = append(errs, fmt.Errorf("prefetch %d is below 1", c.Prefetch))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d is below 1", c.Concurrency))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d is below 1", c.MaxAttempts))
	}
	if c.Backoff.Initial < time.Millisecond {
		errs = append(errs, fmt.Errorf("backoff initial %v is below 1ms", c.Backoff.Initial))
	}
	if c.Backoff.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("backoff multiplier %v is below 1", c.Backoff.Multiplier))
	}
	if c.Backoff.Max < c.Backoff.Initial {
		errs = append(errs, fmt.Errorf("backoff max %v is below initial %v", c.Backoff.Max, c.Backoff.Initial))
	}
	if c.DedupWindow < 0 {
		errs = append(errs, fmt.Errorf("dedup window %v is negative", c.DedupWindow))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v is negative", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// Consumer reads one durable queue with manual acks, runs a Handler for each
// delivery, retries failures through per-delay queues and dead-letters what
// keeps failing. It recovers its channel, queues and consumer after a
// reconnection.
type Consumer struct {
	c      *Conn
	cfg    ConsumerConfig
	h      Handler // the handler wrapped in the consumer's layers
	pub    *Publisher
	stats  *Stats
	logger *slog.Logger

	// state is consumerNew until Run, consumerStarting until the broker
	// accepted basic.consume and again while a lost channel is being
	// recovered, consumerConsuming in between, consumerStopped after Run.
	state atomic.Int32
}

const (
	consumerNew int32 = iota
	consumerStarting
	consumerConsuming
	consumerStopped
)

// Consuming reports whether the consumer's queues are declared and bound and
// the broker is delivering to it: false before Run has got that far and while
// a lost channel is being recovered.
func (cs *Consumer) Consuming() bool { return cs.state.Load() == consumerConsuming }

// NewConsumer validates cfg and prepares a consumer; Run starts it.
func (c *Conn) NewConsumer(cfg ConsumerConfig, h Handler) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("consumer: handler is nil")
	}
	cfg.setDefaults(c.cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer %s config: %w", cfg.Name, err)
	}
	pub, err := c.NewPublisher(PublisherConfig{})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Name, err)
	}
	cs := &Consumer{c: c, cfg: cfg, pub: pub, stats: &c.stats}
	cs.logger = cfg.Logger.With("queue", cfg.Name)
	cs.h = chain(h,
		deadLetter(c.cfg.DeadLetterExchange, cfg.Name, pub, cs.stats, cs.logger),
		retry(cfg.MaxAttempts, cs.RetryQueue, pub, cs.stats, cs.logger),
		decode(cfg.Decoder),
		dedup(cfg.Dedup, cfg.DedupWindow, cs.stats, cs.logger),
		countHandled(cs.stats),
		recoverPanic,
	)
	c.track(cs)
	return cs, nil
}

// DeadLetterQueue returns the name of the consumer's dead-letter queue.
func (cs *Consumer) DeadLetterQueue() string { return cs.cfg.Name + ".dlq" }

// RetryQueue returns the name of the delay queue used after the attempt-th
// failed attempt.
func (cs *Consumer) RetryQueue(attempt int) string {
	return fmt.Sprintf("%s.retry.%dms", cs.cfg.Name, cs.cfg.Backoff.Delay(attempt).Milliseconds())
}

// Queues returns every queue the consumer declares: its own, its retry
// queues and its dead-letter queue.
func (cs *Consumer) Queues() []string {
	qs := []string{cs.cfg.Name, cs.DeadLetterQueue()}
	seen := map[string]bool{}
	for a := 1; a <= max(cs.cfg.MaxAttempts-1, 1); a++ {
		if q := cs.RetryQueue(a); !seen[q] {
			seen[q] = true
			qs = append(qs, q)
		}
	}
	return qs
}

// declare creates the consumer's queues idempotently, of the Conn's queue
// type (Config.queueArgs). Retry queues hold each message for a fixed TTL
// and then dead-letter it to the consumer's own queue through the default
// exchange, so a retry reaches only this consumer and a long delay never
// blocks a short one. A queue that exists with another type or other
// arguments fails with a *QueueMismatchError.
func (cs *Consumer) declare(ctx context.Context, ch *amqp091.Channel) error {
	cfg := cs.c.cfg
	other := cfg // the same topology of the other type, to tell what exists
	other.QueueType = QueueClassic
	if cfg.QueueType == QueueClassic {
		other.QueueType = QueueQuorum
	}
	queue := func(name string, role queueRole, base amqp091.Table) error {
		args := cfg.queueArgs(role, base)
		if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
			return cs.c.queueRefused(ctx, name, args, other.queueArgs(role, base), err)
		}
		return nil
	}
	name := cs.cfg.Name
	if err := queue(name, roleConsumer, amqp091.Table{
		"x-dead-letter-exchange":    cfg.DeadLetterExchange,
		"x-dead-letter-routing-key": name,
	}); err != nil {
		return err
	}
	for _, key := range cs.cfg.Bindings {
		if err := ch.QueueBind(name, key, cs.cfg.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %s to %s with %q: %w", name, cs.cfg.Exchange, key, err)
		}
	}
	dlq := cs.DeadLetterQueue()
	if err := queue(dlq, roleDeadLetter, nil); err != nil {
		return err
	}
	if err := ch.QueueBind(dlq, name, cfg.DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", dlq, err)
	}
	for a := 1; a <= max(cs.cfg.MaxAttempts-1, 1); a++ {
		if err := queue(cs.RetryQueue(a), roleDelay, amqp091.Table{
			"x-message-ttl":             cs.cfg.Backoff.Delay(a).Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": name,
		}); err != nil {
			return err
		}
	}
	return nil
}

// errTopology marks a declaration the broker refused: retrying cannot help.
var errTopology = errors.New("topology refused")

// topologyError is a refused declaration: it is errTopology and reads as
// the refusal alone, which names the queue and what to do.
type topologyError struct{ err error }

func (e *topologyError) Error() string { return e.err.Error() }

func (e *topologyError) Unwrap() []error { return []error{errTopology, e.err} }

// Run consumes until ctx is done, then stops taking deliveries and waits for
// the handlers in flight (cancelling their context after ShutdownTimeout).
// It returns nil after a shutdown through ctx, and an error when the Conn
// was closed or the broker refused the queue declarations.
func (cs *Consumer) Run(ctx context.Context) error {
	defer func() {
		if err := cs.pub.Close(); err != nil {
			cs.logger.Warn("close the consumer's publisher", "error", err)
		}
	}()
	cs.state.Store(consumerStarting)
	defer cs.state.Store(consumerStopped)
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	go func() {
		<-ctx.Done()
		t := time.NewTimer(cs.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			hcancel()
		case <-hctx.Done():
		}
	}()
	for attempt := 1; ; attempt++ {
		err := cs.session(ctx, hctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return fmt.Errorf("consumer %s: %w", cs.cfg.Name, err)
		}
		if errors.Is(err, errTopology) {
			return fmt.Errorf("consumer %s: %w", cs.cfg.Name, err)
		}
		if err == nil {
			attempt = 0 // a session that ran is not a failed attempt
			continue
		}
		cs.logger.Warn("consumer session failed; starting again", "attempt", attempt, "error", err)
		if sleepCtx(ctx, cs.c.done, cs.c.backoff(attempt)) != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consumer %s: %w", cs.cfg.Name, ErrClosed)
		}
	}
}

// session consumes on one channel until it closes or ctx ends; it returns
// nil when the channel was lost after consuming started.
func (cs *Consumer) session(ctx, hctx context.Context) error {
	ch, err := cs.c.channel(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := ch.Close(); err != nil && !errors.Is(err, amqp091.ErrClosed) {
			cs.logger.Warn("close consumer channel", "error", err)
		}
	}()
	lost := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := cs.declare(ctx, ch); err != nil {
		var aerr *amqp091.Error
		if errors.As(err, &aerr) && aerr.Code == amqp091.PreconditionFailed {
			return &topologyError{err}
		}
		return err
	}
	if err := ch.Qos(cs.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	tag := cs.cfg.Name + "-" + randomID()
	deliveries, err := ch.Consume(cs.cfg.Name, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", cs.cfg.Name, err)
	}
	cs.state.Store(consumerConsuming)
	defer cs.state.CompareAndSwap(consumerConsuming, consumerStarting)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range cs.cfg.Concurrency {
		wg.Go(func() { cs.work(hctx, deliveries, stop) })
	}
	select {
	case <-ctx.Done():
		// Stop the broker sending more; deliveries already buffered but not
		// started are requeued by the workers.
		if err := ch.Cancel(tag, false); err != nil && !errors.Is(err, amqp091.ErrClosed) {
			cs.logger.Warn("cancel consumer", "consumer_tag", tag, "error", err)
		}
	case <-lost:
	}
	close(stop)
	wg.Wait()
	return nil
}

func (cs *Consumer) work(ctx context.Context, deliveries <-chan amqp091.Delivery, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			select {
			case <-stop:
				cs.nack(d, "return an unstarted delivery at shutdown")
				return
			default:
			}
			cs.handle(ctx, d)
		}
	}
}

// handle runs one delivery through the consumer's layers and acks it, or,
// when they could not move a failed delivery to a delay queue or the dead
// letters, returns it to the broker for a redelivery. It never panics on a
// handler's or decoder's behalf.
func (cs *Consumer) handle(ctx context.Context, d amqp091.Delivery) {
	cs.stats.Consumed.Add(1)
	// The handling is a span continuing the publisher's trace; the layers
	// add its retries, duplicates and dead-lettering as events.
	ctx, span := startProcess(ctx, d, cs.cfg.Name)
	err := cs.h(ctx, toDelivery(d, cs.cfg.Name))
	endSpan(span, err)
	if err != nil {
		cs.nack(d, "return a delivery that could not be moved")
		return
	}
	if err := d.Ack(false); err != nil {
		// The broker delivers it again once the channel is gone; the dedup
		// layer drops that copy if its id was handled.
		cs.logger.Warn("ack", "message_id", d.MessageId, "delivery_tag", d.DeliveryTag, "error", err)
	}
}

// nack returns d to its queue. A failure means the channel is gone, which
// returns d as well.
func (cs *Consumer) nack(d amqp091.Delivery, what string) {
	if err := d.Nack(false, true); err != nil {
		cs.logger.Warn(what, "message_id", d.MessageId, "delivery_tag", d.DeliveryTag, "error", err)
	}
}

// messageOf is the Message a broker delivery carries.
func messageOf(d amqp091.Delivery) Message {
	return Message{
		Exchange:      d.Exchange,
		RoutingKey:    d.RoutingKey,
		ID:            d.MessageId,
		Type:          d.Type,
		CorrelationID: d.CorrelationId,
		ReplyTo:       d.ReplyTo,
		Timestamp:     d.Timestamp,
		ContentType:   d.ContentType,
		Headers:       map[string]any(d.Headers),
		Body:          d.Body,
	}
}

// toDelivery converts d, restoring the original exchange and routing key of
// a message that came back through a delay queue.
func toDelivery(d amqp091.Delivery, queue string) Delivery {
	del := Delivery{
		Message:     messageOf(d),
		Queue:       queue,
		Attempt:     int(headerInt(d.Headers, HeaderAttempts)) + 1,
		Redelivered: d.Redelivered,
	}
	if rk, ok := d.Headers[HeaderOriginalRoutingKey].(string); ok {
		del.RoutingKey = rk
	}
	if ex, ok := d.Headers[HeaderOriginalExchange].(string); ok {
		del.Exchange = ex
	}
	return del
}

func headerInt(h amqp091.Table, key string) int64 {
	switch v := h[key].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int:
		return int64(v)
	case int16:
		return int64(v)
	case int8:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	default:
		return 0
	}
}
