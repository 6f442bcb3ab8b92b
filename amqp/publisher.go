package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// MaxInFlight bounds the messages published but not yet confirmed, so a
	// slow broker pushes back on callers instead of growing memory.
	// Default 4096.
	MaxInFlight int
}

func (c *PublisherConfig) setDefaults() {
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 4096
	}
}

// Validate reports every problem of the configuration at once.
func (c PublisherConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max in flight %d is below 1", c.MaxInFlight))
	}
	return errors.Join(errs...)
}

// Publisher publishes persistent, mandatory messages with publisher confirms.
// All goroutines share one confirm channel: publishes are pipelined and each
// caller waits only for its own confirm, matched by delivery tag. It is safe
// for concurrent use and survives reconnections.
type Publisher struct {
	c     *Conn
	cfg   PublisherConfig
	stats *Stats
	slots chan struct{}

	ctx    context.Context // lifetime; cancelled by Close
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	sess  *pubSession
	ready chan struct{} // closed while sess is usable
}

// pubSession is one confirm channel and the publishes awaiting its confirms.
type pubSession struct {
	ch    *amqp091.Channel
	pubMu sync.Mutex // makes delivery-tag prediction and publish atomic

	mu      sync.Mutex // guards pending and dead; never held during I/O
	pending map[uint64]*confirmWaiter
	dead    bool
}

type confirmWaiter struct {
	id, exchange, key string
	returned          bool
	returnText        string
	done              chan error
}

var waiterPool = sync.Pool{New: func() any { return &confirmWaiter{done: make(chan error, 1)} }}

// errSessionGone means the message was not written: the channel closed first,
// so it can be sent again on the next channel without risk of a duplicate.
var errSessionGone = errors.New("publisher channel closed")

// NewPublisher opens a confirm channel on c. The channel reopens by itself
// after a reconnection.
func (c *Conn) NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("publisher config: %w", err)
	}
	if c.closed() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		c:      c,
		cfg:    cfg,
		stats:  &c.stats,
		slots:  make(chan struct{}, cfg.MaxInFlight),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		ready:  make(chan struct{}),
	}
	go p.run()
	return p, nil
}

// Close stops the publisher. Publishes still waiting for a confirm fail with
// ErrConnectionLost; later ones fail with ErrClosed.
func (p *Publisher) Close() error {
	p.cancel()
	<-p.done
	return nil
}

// Publish sends m and returns once the broker confirmed it. It returns an
// error wrapping ErrNacked for a nack, ErrUnroutable for a returned message,
// ErrConnectionLost when the connection closed before the confirm, and ctx's
// error when ctx ended first (also while waiting for a reconnection).
//
// The publish is a span of ctx's trace, whose W3C trace context goes in the
// message's headers; when ctx has no span, the trace context m's headers
// already carry is continued.
func (p *Publisher) Publish(ctx context.Context, m Message) (err error) {
	m, span := startPublish(ctx, m)
	defer func() { endSpan(span, err) }()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", m.ID, ctx.Err())
	}
	defer func() { <-p.slots }()
	w := newWaiter(m)
	if err := p.send(ctx, m, w); err != nil {
		waiterPool.Put(w)
		return fmt.Errorf("publish %s: %w", m.ID, err)
	}
	select {
	case err := <-w.done:
		waiterPool.Put(w)
		if err != nil {
			return fmt.Errorf("publish %s: %w", m.ID, err)
		}
		return nil
	case <-ctx.Done():
		// w stays registered; the confirm lands in its buffer and w is
		// left to the garbage collector.
		return fmt.Errorf("publish %s: waiting for confirm: %w", m.ID, ctx.Err())
	}
}

// BatchError is what PublishBatch returns when some of its messages were
// not confirmed: Errs holds, by the batch's index, each message's failure
// (nil for a confirmed one), so a caller can tell which ones to send again
// and which the broker returned as unroutable.
type BatchError struct {
	IDs  []string
	Errs []error
}

func (e *BatchError) Error() string {
	var b strings.Builder
	for i, err := range e.Errs {
		if err == nil {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "batch message %d (%s): %v", i, e.IDs[i], err)
	}
	return b.String()
}

// Unwrap returns the failures, for errors.Is and errors.As.
func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// PublishBatch publishes every message, pipelined, and waits for all the
// confirms. It returns nil when all were confirmed, otherwise a
// *BatchError saying which failed and why, each named by its index and
// message id; the caller may republish just those. Each message is a span
// of its own, as with Publish.
func (p *Publisher) PublishBatch(ctx context.Context, msgs []Message) error {
	waiters := make([]*confirmWaiter, len(msgs))
	errs := make([]error, len(msgs))
	spans := make([]trace.Span, len(msgs))
	defer func() {
		for i, s := range spans {
			endSpan(s, errs[i])
		}
	}()
	for i, m := range msgs {
		m, spans[i] = startPublish(ctx, m)
		w := newWaiter(m)
		if err := p.send(ctx, m, w); err != nil {
			waiterPool.Put(w)
			errs[i] = err
			continue
		}
		waiters[i] = w
	}
	for i, w := range waiters {
		if w == nil {
			continue
		}
		select {
		case err := <-w.done:
			waiterPool.Put(w)
			errs[i] = err
		case <-ctx.Done():
			errs[i] = fmt.Errorf("waiting for confirm: %w", ctx.Err())
		}
	}
	for _, err := range errs {
		if err != nil {
			ids := make([]string, len(msgs))
			for i, m := range msgs {
				ids[i] = m.ID
			}
			// The spans end with errs when this returns: keep a copy.
			return &BatchError{IDs: ids, Errs: append([]error(nil), errs...)}
		}
	}
	return nil
}

func newWaiter(m Message) *confirmWaiter {
	w := waiterPool.Get().(*confirmWaiter)
	w.id, w.exchange, w.key = m.ID, m.Exchange, m.RoutingKey
	w.returned, w.returnText = false, ""
	return w
}

// send writes m on the current channel, waiting for one while reconnecting,
// with w registered for its confirm.
func (p *Publisher) send(ctx context.Context, m Message, w *confirmWaiter) error {
	ts := m.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	msg := amqp091.Publishing{
		Headers:       amqp091.Table(m.Headers),
		ContentType:   m.ContentType,
		DeliveryMode:  amqp091.Persistent,
		CorrelationId: m.CorrelationID,
		ReplyTo:       m.ReplyTo,
		MessageId:     m.ID,
		Timestamp:     ts,
		Type:          m.Type,
		Body:          m.Body,
	}
	for {
		s, err := p.session(ctx)
		if err != nil {
			return err
		}
		err = s.publish(ctx, m.Exchange, m.RoutingKey, msg, w)
		if errors.Is(err, errSessionGone) {
			continue
		}
		if err != nil {
			return err
		}
		p.stats.Published.Add(1)
		return nil
	}
}

func (s *pubSession) publish(ctx context.Context, exchange, key string, msg amqp091.Publishing, w *confirmWaiter) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	// GetNextPublishSeqNo takes a lock the library holds while it hands a
	// confirm to our listener, so s.mu must not be held around it.
	tag := s.ch.GetNextPublishSeqNo()
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return errSessionGone
	}
	s.pending[tag] = w
	s.mu.Unlock()
	err := s.ch.PublishWithContext(ctx, exchange, key, true, false, msg)
	if err == nil {
		return nil
	}
	s.mu.Lock()
	_, still := s.pending[tag]
	delete(s.pending, tag)
	s.mu.Unlock()
	if !still {
		<-w.done // the session died meanwhile and already failed w
	}
	if errors.Is(err, amqp091.ErrClosed) || s.ch.IsClosed() {
		return errSessionGone
	}
	return err
}

// session returns the usable channel, waiting for one while reconnecting.
func (p *Publisher) session(ctx context.Context) (*pubSession, error) {
	for {
		p.mu.Lock()
		s, ready := p.sess, p.ready
		p.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for broker connection: %w", ctx.Err())
		case <-p.done:
			return nil, ErrClosed
		}
	}
}

// run keeps a confirm channel open until Close.
func (p *Publisher) run() {
	defer close(p.done)
	for attempt := 1; ; attempt++ {
		ch, err := p.c.channel(p.ctx)
		if err != nil {
			return
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			if sleepCtx(p.ctx, p.c.done, p.c.backoff(attempt)) != nil {
				return
			}
			continue
		}
		attempt = 0
		// Unbuffered listeners read by one goroutine keep the broker's
		// order: a basic.return is fully recorded before the ack of the
		// same message can be received.
		confirms := ch.NotifyPublish(make(chan amqp091.Confirmation))
		returns := ch.NotifyReturn(make(chan amqp091.Return))
		s := &pubSession{ch: ch, pending: make(map[uint64]*confirmWaiter)}
		p.mu.Lock()
		p.sess = s
		close(p.ready)
		p.mu.Unlock()

		stopping := p.serve(s, confirms, returns)

		p.mu.Lock()
		p.sess = nil
		p.ready = make(chan struct{})
		p.mu.Unlock()
		s.kill()
		if stopping {
			return
		}
	}
}

// serve dispatches confirms and returns until the channel closes; it reports
// whether the publisher is being closed.
func (p *Publisher) serve(s *pubSession, confirms <-chan amqp091.Confirmation, returns <-chan amqp091.Return) bool {
	stopping := false
	ctxDone := p.ctx.Done()
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			s.markReturned(r)
		case c, ok := <-confirms:
			if !ok {
				return stopping
			}
			p.resolve(s, c)
		case <-ctxDone:
			stopping, ctxDone = true, nil
			// Closing waits for the broker's close-ok, which the reader
			// goroutine delivers only after handing us pending confirms.
			go func() { _ = s.ch.Close() }()
		}
	}
}

func (s *pubSession) markReturned(r amqp091.Return) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best uint64
	var bw *confirmWaiter
	for tag, w := range s.pending {
		if w.returned || w.id != r.MessageId || w.exchange != r.Exchange || w.key != r.RoutingKey {
			continue
		}
		if bw == nil || tag < best {
			best, bw = tag, w
		}
	}
	if bw != nil {
		bw.returned = true
		bw.returnText = r.ReplyText
	}
}

func (p *Publisher) resolve(s *pubSession, c amqp091.Confirmation) {
	s.mu.Lock()
	w := s.pending[c.DeliveryTag]
	delete(s.pending, c.DeliveryTag)
	s.mu.Unlock()
	if w == nil {
		return
	}
	switch {
	case !c.Ack:
		p.stats.Nacked.Add(1)
		w.done <- ErrNacked
	case w.returned:
		p.stats.Returned.Add(1)
		w.done <- fmt.Errorf("%w: %s (exchange %q, routing key %q)", ErrUnroutable, w.returnText, w.exchange, w.key)
	default:
		p.stats.Confirmed.Add(1)
		w.done <- nil
	}
}

// kill fails every publish still waiting on this channel.
func (s *pubSession) kill() {
	s.mu.Lock()
	s.dead = true
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, w := range pending {
		w.done <- ErrConnectionLost
	}
}
