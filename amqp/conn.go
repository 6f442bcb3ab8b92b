package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/sagaflow/sagaflow/internal/redact"
)

// dialTimeout bounds the TCP connect and AMQP handshake with one node, so
// that a node that went away without closing its sockets does not hold up
// the move to the next one.
const dialTimeout = 10 * time.Second

// node is one broker URL of Config.URL with what dialling it takes.
type node struct {
	url   string
	label string // the URL with its password hidden, for logs
	host  string // host:port, the metrics label
	dial  amqp091.Config
}

// Conn is a connection to RabbitMQ that recovers by itself. amqp091-go leaves
// recovery to the application (its experimental Config.Recovery is not used
// here because confirms lost with a connection must surface as errors), so
// Conn watches NotifyClose, redials with exponential backoff and re-declares
// the exchanges; each Publisher, Consumer and Requester watches its own
// channel and reopens it, with its queues and consumers, on the new
// connection.
//
// With several node URLs the Conn is on one node at a time: it dials them in
// turn, and after losing a connection starts from the node after the one it
// lost. Moving to another node is a reconnection like any other: publishes
// not yet confirmed fail with ErrConnectionLost (the caller publishes
// again), and deliveries not yet acked are delivered again by the broker.
type Conn struct {
	cfg    Config
	nodes  []node
	stats  Stats
	logger *slog.Logger

	mu    sync.Mutex
	at    int // index in nodes of the node of conn, or of the last one tried
	conn  *amqp091.Connection
	ready chan struct{} // closed while conn is usable; replaced when it is lost
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
	once  sync.Once

	consumers []*Consumer // every consumer made on c, for NotConsuming
}

func (c *Conn) track(cs *Consumer) {
	c.mu.Lock()
	c.consumers = append(c.consumers, cs)
	c.mu.Unlock()
}

// NotConsuming names the consumers made on c whose Run has started but that
// are not consuming yet (their queues are being declared, or their channel
// is being recovered). A process is ready to take messages when it is empty.
// Consumers whose Run was never called or has returned are not listed.
func (c *Conn) NotConsuming() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, cs := range c.consumers {
		if cs.state.Load() == consumerStarting {
			names = append(names, cs.cfg.Name)
		}
	}
	return names
}

// Dial connects to the broker and declares the event exchange and the
// dead-letter exchange. It retries a failing first dial with backoff until ctx
// is done, so pass a context with a deadline. The returned Conn reconnects by
// itself until Close.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("amqp config: %w", err)
	}
	urls, err := ParseURLs(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("amqp config: %w", err)
	}
	c := &Conn{
		cfg:    cfg,
		logger: cfg.Logger,
		ready:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	hosts := make([]string, 0, len(urls))
	for _, u := range urls {
		tlsCfg, err := cfg.clientTLS(u)
		if err != nil {
			return nil, fmt.Errorf("amqp config: %s: %w", redact.URL(u), err)
		}
		uri, _ := amqp091.ParseURI(u)
		props := amqp091.NewConnectionProperties()
		props.SetClientConnectionName(cfg.ConnectionName)
		n := node{
			url:   u,
			label: redact.URL(u),
			host:  net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)),
			dial: amqp091.Config{
				Heartbeat:       cfg.Heartbeat,
				TLSClientConfig: tlsCfg,
				Properties:      props,
				Locale:          "en_US",
				Dial:            amqp091.DefaultDial(dialTimeout),
			},
		}
		c.nodes = append(c.nodes, n)
		hosts = append(hosts, n.host)
	}
	c.stats.addNodes(hosts)
	conn, err := c.connectWithBackoff(ctx, 0, true)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	close(c.ready)
	c.wg.Add(1)
	go c.supervise(conn)
	return c, nil
}

// Config returns the configuration with defaults applied.
func (c *Conn) Config() Config { return c.cfg }

// Node returns the URL, password hidden, of the node the Conn is connected
// to, or was last trying while it reconnects.
func (c *Conn) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[c.at].label
}

// Stats returns the counters shared by every publisher and consumer of c.
func (c *Conn) Stats() *Stats { return &c.stats }

// Connected reports whether the broker connection is open right now; it is
// false while a lost connection is being re-established and after Close.
func (c *Conn) Connected() bool {
	if c.closed() {
		return false
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	return conn != nil && !conn.IsClosed()
}

// Close closes the connection and stops reconnecting. Publishers, consumers
// and requesters of c fail with ErrClosed afterwards.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			err = conn.Close()
		}
		c.wg.Wait()
	})
	if errors.Is(err, amqp091.ErrClosed) {
		err = nil
	}
	return err
}

func (c *Conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// connect dials n once and declares the exchanges.
func (c *Conn) connect(n node) (*amqp091.Connection, error) {
	conn, err := amqp091.DialConfig(n.url, n.dial)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	if err := ch.ExchangeDeclare(c.cfg.Exchange, amqp091.ExchangeTopic, true, false, false, false, nil); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("declare exchange %s: %w", c.cfg.Exchange, err)
	}
	if err := ch.ExchangeDeclare(c.cfg.DeadLetterExchange, amqp091.ExchangeDirect, true, false, false, false, nil); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("declare dead-letter exchange %s: %w", c.cfg.DeadLetterExchange, err)
	}
	return conn, nil
}

// connectWithBackoff dials the nodes in turn, starting with nodes[start],
// and waits with backoff after each round in which none answered, until ctx
// is done or c is closed. On the first connect (Dial), a node that refuses the
// exchange declarations (406 PRECONDITION_FAILED: an exchange exists with
// other properties) ends the attempts, since no retry can change that.
func (c *Conn) connectWithBackoff(ctx context.Context, start int, first bool) (*amqp091.Connection, error) {
	delay := c.cfg.ReconnectInitial
	for {
		var errs []error
		for k := range c.nodes {
			i := (start + k) % len(c.nodes)
			n := c.nodes[i]
			c.mu.Lock()
			c.at = i
			c.mu.Unlock()
			conn, err := c.connect(n)
			if err == nil {
				if first {
					c.logger.Debug("connected to RabbitMQ", "node", n.label)
				} else {
					c.logger.Info("reconnected to RabbitMQ", "node", n.label)
				}
				return conn, nil
			}
			var aerr *amqp091.Error
			if first && errors.As(err, &aerr) && aerr.Code == amqp091.PreconditionFailed {
				return nil, fmt.Errorf("connect to broker %s: %w", n.label, err)
			}
			if len(c.nodes) > 1 {
				c.logger.Warn("RabbitMQ node unavailable; trying the next one", "node", n.label, "error", err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", n.label, err))
		}
		err := errors.Join(errs...)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect to broker: %w", errors.Join(err, ctx.Err()))
		case <-c.done:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		delay = min(delay*2, c.cfg.ReconnectMax)
	}
}

// supervise waits for the connection to close and replaces it, until Close.
func (c *Conn) supervise(conn *amqp091.Connection) {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		lost := conn.NotifyClose(make(chan *amqp091.Error, 1))
		var reason *amqp091.Error
		select {
		case <-c.done:
			return
		case reason = <-lost:
		}
		if c.closed() {
			return // Close closed it
		}
		c.mu.Lock()
		c.conn = nil
		c.ready = make(chan struct{})
		from := c.at
		c.mu.Unlock()
		if reason != nil {
			c.logger.Warn("lost the RabbitMQ connection; reconnecting", "node", c.nodes[from].label, "error", reason)
		} else {
			c.logger.Warn("lost the RabbitMQ connection; reconnecting", "node", c.nodes[from].label)
		}
		// A node that failed is likely to fail again: start with the next.
		next, err := c.connectWithBackoff(ctx, from+1, false)
		if err != nil {
			return // only when closed
		}
		c.mu.Lock()
		c.stats.CountReconnect(c.nodes[c.at].host)
		if c.closed() {
			c.mu.Unlock()
			_ = next.Close()
			return
		}
		c.conn = next
		close(c.ready)
		c.mu.Unlock()
		conn = next
	}
}

// connection returns the current open connection, waiting for a reconnection
// while there is none, until ctx is done or c is closed.
func (c *Conn) connection(ctx context.Context) (*amqp091.Connection, error) {
	for {
		c.mu.Lock()
		conn, ready := c.conn, c.ready
		c.mu.Unlock()
		if c.closed() {
			return nil, ErrClosed
		}
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		if conn != nil {
			// Closed but not yet noticed by supervise: give it a moment
			// rather than spinning.
			ready = nil
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for broker connection: %w", ctx.Err())
		case <-c.done:
			t.Stop()
			return nil, ErrClosed
		case <-ready:
		case <-t.C:
		}
		t.Stop()
	}
}

// channel opens a channel on the current connection, waiting for a
// reconnection and retrying with backoff until ctx is done or c is closed.
func (c *Conn) channel(ctx context.Context) (*amqp091.Channel, error) {
	delay := c.cfg.ReconnectInitial
	for {
		conn, err := c.connection(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			return ch, nil
		}
		if err := sleepCtx(ctx, c.done, delay); err != nil {
			return nil, err
		}
		delay = min(delay*2, c.cfg.ReconnectMax)
	}
}

// backoff is the delay before the attempt-th try: initial·2^(attempt-1),
// capped at the reconnect maximum.
func (c *Conn) backoff(attempt int) time.Duration {
	d := c.cfg.ReconnectInitial
	for i := 1; i < attempt && d < c.cfg.ReconnectMax; i++ {
		d *= 2
	}
	return min(d, c.cfg.ReconnectMax)
}

func sleepCtx(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return ErrClosed
	case <-t.C:
		return nil
	}
}

// QueueDepth is what a passive declare tells of a queue.
type QueueDepth struct {
	// Messages are ready for delivery (not counting unacked ones).
	Messages int
	// Consumers are consuming from it.
	Consumers int
}

// InspectQueue reads a queue's depth with a passive declare, which needs no
// management plugin and changes nothing. A queue that does not exist is an
// error (the broker closes the channel that asked).
func (c *Conn) InspectQueue(ctx context.Context, name string) (QueueDepth, error) {
	ch, err := c.channel(ctx)
	if err != nil {
		return QueueDepth{}, err
	}
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		return QueueDepth{}, fmt.Errorf("amqp: inspect queue %s: %w", name, err)
	}
	return QueueDepth{Messages: q.Messages, Consumers: q.Consumers}, nil
}
