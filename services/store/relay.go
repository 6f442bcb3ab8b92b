package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// ErrUnroutable is what a Publisher's error wraps when the broker took a
// message but no queue was bound for it. The relay marks such a row sent
// with last_error "unroutable" instead of retrying it for ever.
var ErrUnroutable = errors.New("store: message unroutable")

// Publisher is what the relay publishes through; the store knows no broker,
// so a broker client is adapted to it at the edge (services/command adapts
// *amqp.Publisher). Both methods return only after the broker confirmed
// every message, and must be safe for concurrent use.
type Publisher interface {
	// Publish sends one message and waits for its confirm. An unroutable
	// message is an error wrapping ErrUnroutable.
	Publish(ctx context.Context, m OutboxMessage) error
	// PublishBatch sends messages in order with pipelined confirms and waits
	// for all of them. A *BatchError says which messages failed and why;
	// any other error leaves the relay to find out one message at a time.
	PublishBatch(ctx context.Context, ms []OutboxMessage) error
}

// BatchError is a PublishBatch failure message by message: Errs[i] is the
// failure of the batch's message i, nil when it was confirmed.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	return errors.Join(e.Unwrap()...).Error()
}

// Unwrap returns the failures, for errors.Is and errors.As.
func (e *BatchError) Unwrap() []error {
	var out []error
	for i, err := range e.Errs {
		if err != nil {
			out = append(out, fmt.Errorf("batch message %d: %w", i, err))
		}
	}
	return out
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Producer names the outbox rows this relay drains (the service name).
	// Required.
	Producer string
	// BatchSize is the most rows published in one pipelined batch. Default 200.
	BatchSize int
	// SweepInterval is how often the relay looks for rows without being
	// woken: rows of a crashed run, or of another process on the same
	// PostgreSQL database. Default 5s.
	SweepInterval time.Duration
	// RetryDelay is the pause after a failed publish before the next try.
	// Default 500ms.
	RetryDelay time.Duration
	// Retention is how long sent outbox rows are kept before a sweep
	// deletes them; negative keeps them for ever. Default 24h.
	Retention time.Duration
	// InboxRetention is how long the producer's inbox rows (the command ids
	// it handled, with their replies) are kept before a sweep deletes them;
	// negative keeps them for ever. A command redelivered after its row went
	// is handled again, so keep it longer than any command may be retried
	// (an activity's retries, a redrive from the dead letters). Default
	// 168h (7 days).
	InboxRetention time.Duration
	// Logger receives publish failures the relay recovers from by retrying.
	// Default slog.Default().
	Logger *slog.Logger
	// AfterPublish, when set, runs after a batch was confirmed and before it
	// is marked sent; an error abandons the batch unmarked, as a crash at
	// that point would. It exists to test that case.
	AfterPublish func(ctx context.Context, batch []OutboxMessage) error
}

func (c *RelayConfig) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 200
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 5 * time.Second
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = 500 * time.Millisecond
	}
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.InboxRetention == 0 {
		c.InboxRetention = DefaultInboxRetention
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with the configuration.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.Producer == "" {
		errs = append(errs, errors.New("relay: Producer is required"))
	}
	if c.BatchSize < 0 {
		errs = append(errs, errors.New("relay: BatchSize must not be negative"))
	}
	if c.SweepInterval < 0 || c.RetryDelay < 0 {
		errs = append(errs, errors.New("relay: SweepInterval and RetryDelay must not be negative"))
	}
	return errors.Join(errs...)
}

// RelayStats counts what a relay did.
type RelayStats struct {
	// Published counts rows the broker confirmed.
	Published atomic.Int64
	// Unroutable counts rows no queue was bound for (a reply whose
	// requester went away, an event nobody subscribes to); they are marked
	// sent with last_error "unroutable" rather than blocking the outbox.
	Unroutable atomic.Int64
	// Failures counts batches that failed and were retried.
	Failures atomic.Int64
}

// Relay drains one producer's outbox to its Publisher in creation order. It is
// woken by every commit that wrote outbox rows and sweeps periodically.
// Delivery is at least once: a crash between the broker's confirm and the
// mark republishes the same message id, which consumers deduplicate. On
// PostgreSQL several relays of one producer may run in several processes:
// each batch is locked with FOR UPDATE SKIP LOCKED for the whole
// publish-and-mark, so no row is published by two relays at once.
type Relay struct {
	db    *DB
	pub   Publisher
	cfg   RelayConfig
	wake  <-chan struct{}
	stats RelayStats
}

// NewRelay builds a relay; it does nothing until Run.
func NewRelay(db *DB, pub Publisher, cfg RelayConfig) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, errors.New("relay: nil publisher")
	}
	return &Relay{db: db, pub: pub, cfg: cfg, wake: db.Waker()}, nil
}

// Stats returns the relay's counters.
func (r *Relay) Stats() *RelayStats { return &r.stats }

// Run publishes pending rows until ctx ends, then returns nil. Failures are
// logged and retried after RetryDelay; they never end Run.
func (r *Relay) Run(ctx context.Context) error {
	sweep := time.NewTicker(r.cfg.SweepInterval)
	defer sweep.Stop()
	for {
		if _, err := r.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.stats.Failures.Add(1)
			r.cfg.Logger.Warn("outbox relay: publish failed, retrying", "producer", r.cfg.Producer, "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(r.cfg.RetryDelay):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-sweep.C:
			if err := r.prune(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("outbox relay: prune failed", "producer", r.cfg.Producer, "error", err)
			}
		}
	}
}

// Flush publishes pending rows in batches until none is left and returns how
// many it published.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.flushBatch(ctx)
		total += n
		if err != nil {
			return total, err
		}
		if n < r.cfg.BatchSize {
			return total, nil
		}
	}
}

type pendingRow struct {
	seq int64
	msg OutboxMessage
}

const selectPending = `SELECT seq, message_id, exchange, routing_key, message_type, correlation_id, envelope, created_at,
	COALESCE(trace_context, '') FROM outbox WHERE producer = ? AND sent_at IS NULL ORDER BY seq LIMIT ?`

func (r *Relay) flushBatch(ctx context.Context) (int, error) {
	if r.db.engine == Postgres {
		// The row locks live as long as this transaction, across the
		// publish, so a relay in another process skips these rows instead of
		// publishing them a second time. PostgreSQL locks rows, not the
		// database: the services' own transactions go on meanwhile.
		n := 0
		var pubErr error
		err := r.db.InTx(ctx, func(tx *Tx) error {
			rows, err := scanPending(tx.Query(ctx, selectPending+" FOR UPDATE SKIP LOCKED", r.cfg.Producer, r.cfg.BatchSize))
			if err != nil {
				return err
			}
			n = len(rows)
			res := r.publish(ctx, rows)
			if res.abort != nil {
				return res.abort
			}
			pubErr = res.err
			return r.markPublished(ctx, tx, rows, res)
		})
		return n, errors.Join(err, pubErr)
	}
	// SQLite is single-process with one relay per producer, and its one
	// write lock is the whole database's: read and publish outside any
	// transaction, so the service's command handlers keep committing while
	// the relay waits for the broker (for as long as the broker is away),
	// then mark the confirmed rows in a short transaction of their own.
	rows, err := scanPending(r.db.Query(ctx, selectPending, r.cfg.Producer, r.cfg.BatchSize))
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	res := r.publish(ctx, rows)
	if res.abort != nil {
		return len(rows), res.abort
	}
	if res.done > 0 {
		err = r.db.InTx(ctx, func(tx *Tx) error { return r.markPublished(ctx, tx, rows, res) })
	}
	return len(rows), errors.Join(err, res.err)
}

func scanPending(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}, err error) ([]pendingRow, error) {
	if err != nil {
		return nil, fmt.Errorf("relay: read outbox: %w", err)
	}
	defer rows.Close()
	var out []pendingRow
	for rows.Next() {
		var (
			p       pendingRow
			body    string
			created int64
			tc      string
		)
		if err := rows.Scan(&p.seq, &p.msg.ID, &p.msg.Exchange, &p.msg.RoutingKey, &p.msg.Type, &p.msg.CorrelationID, &body, &created, &tc); err != nil {
			return nil, fmt.Errorf("relay: read outbox: %w", err)
		}
		p.msg.TraceContext = decodeTraceContext(tc)
		p.msg.Body = []byte(body)
		p.msg.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("relay: read outbox: %w", err)
	}
	return out, nil
}

// published is what publish got through: the first done rows were
// confirmed by the broker or returned as unroutable (those indexes are in
// unroutable); err is the publish failure that stopped it, if any; abort
// means nothing may be marked.
type published struct {
	done       int
	unroutable map[int]bool
	err        error
	abort      error
}

// publish sends rows in order. On a failure it stops, and the confirmed
// prefix is still marked by the caller, so a retry does not republish it.
func (r *Relay) publish(ctx context.Context, rows []pendingRow) published {
	res := published{done: len(rows), unroutable: map[int]bool{}}
	if len(rows) == 0 {
		return res
	}
	msgs := make([]OutboxMessage, len(rows))
	for i, p := range rows {
		msgs[i] = p.msg
	}
	if err := r.pub.PublishBatch(ctx, msgs); err != nil {
		if ctx.Err() != nil {
			return published{abort: err}
		}
		var be *BatchError
		if errors.As(err, &be) && len(be.Errs) == len(msgs) {
			// The batch says what became of each row: skip the unroutable
			// ones, stop at the first other failure (the rows after it wait,
			// keeping the order, and go again with the same ids).
			for i, err := range be.Errs {
				if errors.Is(err, ErrUnroutable) {
					res.unroutable[i] = true
					continue
				}
				if err != nil {
					res.done, res.err = i, fmt.Errorf("relay: publish %s: %w", msgs[i].ID, err)
					break
				}
			}
		} else {
			// The batch error does not say which message failed: publish
			// one by one to tell an unroutable row (skipped) from a broker
			// failure (stop). Messages of the batch that did get through are
			// sent again with the same id, which consumers deduplicate.
			for i, m := range msgs {
				err := r.pub.Publish(ctx, m)
				if errors.Is(err, ErrUnroutable) {
					res.unroutable[i] = true
					continue
				}
				if err != nil {
					res.done, res.err = i, fmt.Errorf("relay: publish %s: %w", m.ID, err)
					break
				}
			}
		}
	}
	if r.cfg.AfterPublish != nil && res.done > 0 {
		if err := r.cfg.AfterPublish(ctx, msgs[:res.done]); err != nil {
			return published{abort: errors.Join(fmt.Errorf("relay: after publish: %w", err), res.err)}
		}
	}
	return res
}

// markPublished marks the rows res got through as sent, in tx, and counts
// them.
func (r *Relay) markPublished(ctx context.Context, tx *Tx, rows []pendingRow, res published) error {
	if res.done == 0 {
		return nil
	}
	if err := r.mark(ctx, tx, rows[:res.done], res.unroutable); err != nil {
		return err
	}
	r.stats.Published.Add(int64(res.done - len(res.unroutable)))
	r.stats.Unroutable.Add(int64(len(res.unroutable)))
	return nil
}

func (r *Relay) mark(ctx context.Context, tx *Tx, rows []pendingRow, unroutable map[int]bool) error {
	now := nowMicros()
	var ok []any
	for i, p := range rows {
		if unroutable[i] {
			if _, err := tx.Exec(ctx, "UPDATE outbox SET sent_at = ?, last_error = 'unroutable' WHERE seq = ?", now, p.seq); err != nil {
				return fmt.Errorf("relay: mark %d: %w", p.seq, err)
			}
			continue
		}
		ok = append(ok, p.seq)
	}
	if len(ok) == 0 {
		return nil
	}
	q := "UPDATE outbox SET sent_at = ? WHERE seq IN (?" + strings.Repeat(", ?", len(ok)-1) + ")"
	if _, err := tx.Exec(ctx, q, append([]any{now}, ok...)...); err != nil {
		return fmt.Errorf("relay: mark sent: %w", err)
	}
	return nil
}

// DefaultInboxRetention is RelayConfig.InboxRetention's default.
const DefaultInboxRetention = 7 * 24 * time.Hour

// prune deletes the sent outbox rows and the inbox rows of the producer
// older than their retention.
func (r *Relay) prune(ctx context.Context) error {
	now := time.Now()
	if r.cfg.Retention >= 0 {
		cutoff := now.Add(-r.cfg.Retention).UnixMicro()
		_, err := r.db.Exec(ctx, "DELETE FROM outbox WHERE producer = ? AND sent_at IS NOT NULL AND sent_at < ?", r.cfg.Producer, cutoff)
		if err != nil {
			return fmt.Errorf("relay: prune outbox: %w", err)
		}
	}
	if r.cfg.InboxRetention >= 0 {
		if _, err := r.db.PruneInbox(ctx, r.cfg.Producer, now.Add(-r.cfg.InboxRetention)); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	return nil
}

// Prune deletes the sent outbox rows and the inbox rows older than their
// retention now, as the relay's sweep does every SweepInterval.
func (r *Relay) Prune(ctx context.Context) error { return r.prune(ctx) }
