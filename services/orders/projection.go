package orders

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/store"
)

// ErrUnknownOrder is returned by Get for an order the read model has no
// row of.
var ErrUnknownOrder = errors.New("orders: unknown order")

// migrations are the read model's tables, owned by the "orders" component.
var migrations = []store.Migration{{
	Version: 1,
	Name:    "orders read model",
	Statements: []string{
		`CREATE TABLE orders (
			order_id       TEXT PRIMARY KEY,
			customer_id    TEXT NOT NULL,
			merchant_id    TEXT NOT NULL,
			status         TEXT NOT NULL,
			lines          TEXT NOT NULL,
			total          BIGINT NOT NULL,
			currency       TEXT NOT NULL,
			failure_reason TEXT NOT NULL,
			failed_step    TEXT NOT NULL,
			created_at     BIGINT NOT NULL,
			updated_at     BIGINT NOT NULL,
			last_event_at  BIGINT NOT NULL,
			last_event_id  TEXT NOT NULL)`,
		`CREATE INDEX orders_by_customer ON orders (customer_id, created_at, order_id)`,
		// Every applied event id, so a redelivered event changes nothing
		// even after the in-memory deduplication of the consumer forgot it.
		`CREATE TABLE orders_applied_events (
			event_id   TEXT PRIMARY KEY,
			order_id   TEXT NOT NULL,
			applied_at BIGINT NOT NULL)`,
	},
}, {
	Version: 2,
	Name:    "applied events retention index",
	// Prune deletes the applied event ids older than the retention by it.
	Statements: []string{`CREATE INDEX orders_applied_events_at ON orders_applied_events (applied_at)`},
}}

// Config configures the read model.
type Config struct {
	// ProjectionQueue is the projection consumer's queue. Default
	// contract.OrdersProjectionQueue ("orders-projection").
	ProjectionQueue string
	// QueryQueue is the queue of orders.get and orders.list. Default
	// contract.OrdersQueryQueue ("orders.queries").
	QueryQueue string
	// Concurrency is the number of events projected at once. Default 4.
	Concurrency int
	// QueryConcurrency is the number of queries answered at once. Default 8.
	QueryConcurrency int
	// MaxAttempts is the number of attempts at an event whose projection
	// fails (a database outage) before it is dead-lettered. Default 10.
	MaxAttempts int
	// Backoff is the delay between those attempts. Defaults: 200ms, ×2,
	// max 10s.
	Backoff amqp.BackoffConfig
	// AppliedEventsRetention is how long the id of an applied event is kept
	// in orders_applied_events; negative keeps them for ever. An event
	// redelivered after its id went is applied again, which the fold of an
	// order tolerates for an event older than the order's last one (see the
	// package documentation), so keep it longer than any redelivery (a
	// redrive from the dead letters). Default DefaultAppliedEventsRetention.
	AppliedEventsRetention time.Duration
	// PruneInterval is how often Run deletes the applied event ids older
	// than AppliedEventsRetention. Default 1m, or half the retention when
	// that is shorter.
	PruneInterval time.Duration
	// Logger receives the prune failures Run recovers from by trying again.
	// Default slog.Default().
	Logger *slog.Logger
}

// DefaultAppliedEventsRetention is Config.AppliedEventsRetention's default.
const DefaultAppliedEventsRetention = 7 * 24 * time.Hour

func (c *Config) setDefaults() {
	if c.ProjectionQueue == "" {
		c.ProjectionQueue = contract.OrdersProjectionQueue
	}
	if c.QueryQueue == "" {
		c.QueryQueue = contract.OrdersQueryQueue
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.QueryConcurrency == 0 {
		c.QueryConcurrency = 8
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.AppliedEventsRetention == 0 {
		c.AppliedEventsRetention = DefaultAppliedEventsRetention
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = time.Minute
		if r := c.AppliedEventsRetention / 2; r > 0 && r < c.PruneInterval {
			c.PruneInterval = r
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with the configuration, with defaults
// applied to unset fields.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.ProjectionQueue == c.QueryQueue {
		errs = append(errs, errors.New("orders: ProjectionQueue and QueryQueue must differ"))
	}
	if c.Concurrency < 1 || c.QueryConcurrency < 1 {
		errs = append(errs, errors.New("orders: Concurrency and QueryConcurrency must be at least 1"))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, errors.New("orders: MaxAttempts must be at least 1"))
	}
	if c.PruneInterval < 0 {
		errs = append(errs, errors.New("orders: PruneInterval must not be negative"))
	}
	return errors.Join(errs...)
}

// Projection is the orders read model: the projection of events into its
// store and the answers to queries.
type Projection struct {
	db    *store.DB
	cfg   Config
	proc  *command.Processor
	clock func() time.Time
}

// New builds the projection on db. It does no I/O: call Migrate before
// Run, Apply or any query.
func New(db *store.DB, cfg Config) (*Projection, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("orders: nil store")
	}
	proc, err := command.NewProcessor(db, command.Config{Service: ServiceName})
	if err != nil {
		return nil, err
	}
	p := &Projection{db: db, cfg: cfg, proc: proc, clock: time.Now}
	proc.Query(events.QueryOrdersGet, func(ctx context.Context, q command.Command) (any, error) {
		o, err := p.Get(ctx, q.Payload.(events.OrdersGetQuery).OrderID)
		if errors.Is(err, ErrUnknownOrder) {
			return nil, &command.Rejection{Reason: contract.ReasonUnknownOrder, Message: err.Error()}
		}
		return o, err
	})
	proc.Query(events.QueryOrdersList, func(ctx context.Context, q command.Command) (any, error) {
		return p.List(ctx, q.Payload.(events.OrdersListQuery))
	})
	return p, nil
}

// Migrate applies the read model's schema migrations to its store, giving up
// when ctx ends. It is idempotent and safe to run from several processes at
// once.
func (p *Projection) Migrate(ctx context.Context) error {
	if err := p.db.Migrate(ctx, ServiceName, migrations); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	return nil
}

// Apply projects one event and reports whether it was applied: false for a
// duplicate event id and for an event the read model does not follow.
// Applying the same event twice, or events out of order, follows the rules
// of the package documentation.
func (p *Projection) Apply(ctx context.Context, env events.Envelope, payload events.Payload) (bool, error) {
	orderID := orderIDOf(payload)
	if orderID == "" {
		return false, nil
	}
	const maxTries = 10
	for try := 1; ; try++ {
		var applied bool
		err := p.db.InTx(ctx, func(tx *store.Tx) error {
			var err error
			applied, err = p.apply(ctx, tx, orderID, env, payload)
			return err
		})
		if err == nil {
			return applied, nil
		}
		// Two first events of one order insert its row at once on
		// PostgreSQL: the loser sees the row when it tries again.
		if (store.IsUniqueViolation(err) || store.IsRetryable(err)) && try < maxTries && ctx.Err() == nil {
			continue
		}
		return false, fmt.Errorf("orders: apply %s %s to order %s: %w", env.Type, env.ID, orderID, err)
	}
}

func (p *Projection) apply(ctx context.Context, tx *store.Tx, orderID string, env events.Envelope, payload events.Payload) (bool, error) {
	now := p.clock().UnixMicro()
	res, err := tx.Exec(ctx, `INSERT INTO orders_applied_events (event_id, order_id, applied_at) VALUES (?, ?, ?)
		ON CONFLICT (event_id) DO NOTHING`, env.ID, orderID, now)
	if err != nil {
		return false, fmt.Errorf("record event: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("record event: %w", err)
	} else if n == 0 {
		return false, nil
	}
	cur, found, err := getOrder(ctx, tx, orderID, tx.DB().ForUpdate())
	if err != nil {
		return false, err
	}
	next, changed := fold(cur, env, payload)
	if !changed {
		return true, nil
	}
	lines, err := json.Marshal(nonNilLines(next.Lines))
	if err != nil {
		return false, fmt.Errorf("encode lines: %w", err)
	}
	args := []any{next.CustomerID, next.MerchantID, string(next.Status), string(lines), next.Total, next.Currency,
		next.FailureReason, next.FailedStep, next.CreatedAt.UnixMicro(), now, next.LastEventAt.UnixMicro(), next.LastEventID, orderID}
	if found {
		_, err = tx.Exec(ctx, `UPDATE orders SET customer_id = ?, merchant_id = ?, status = ?, lines = ?, total = ?, currency = ?,
			failure_reason = ?, failed_step = ?, created_at = ?, updated_at = ?, last_event_at = ?, last_event_id = ?
			WHERE order_id = ?`, args...)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO orders (customer_id, merchant_id, status, lines, total, currency,
			failure_reason, failed_step, created_at, updated_at, last_event_at, last_event_id, order_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	}
	if err != nil {
		return false, fmt.Errorf("write order: %w", err)
	}
	return true, nil
}

func nonNilLines(l []events.OrderLine) []events.OrderLine {
	if l == nil {
		return []events.OrderLine{}
	}
	return l
}

const orderColumns = `order_id, customer_id, merchant_id, status, lines, total, currency, failure_reason, failed_step,
	created_at, updated_at, last_event_at, last_event_id`

type scanner interface{ Scan(...any) error }

func scanOrder(s scanner) (contract.OrderRecord, error) {
	var (
		o                             contract.OrderRecord
		status, lines                 string
		created, updated, lastEventAt int64
	)
	if err := s.Scan(&o.OrderID, &o.CustomerID, &o.MerchantID, &status, &lines, &o.Total, &o.Currency,
		&o.FailureReason, &o.FailedStep, &created, &updated, &lastEventAt, &o.LastEventID); err != nil {
		return contract.OrderRecord{}, err
	}
	o.Status = events.OrderStatus(status)
	if err := json.Unmarshal([]byte(lines), &o.Lines); err != nil {
		return contract.OrderRecord{}, fmt.Errorf("decode lines of order %s: %w", o.OrderID, err)
	}
	if len(o.Lines) == 0 {
		o.Lines = nil
	}
	o.CreatedAt = time.UnixMicro(created).UTC()
	o.UpdatedAt = time.UnixMicro(updated).UTC()
	o.LastEventAt = time.UnixMicro(lastEventAt).UTC()
	return o, nil
}

// getOrder reads one order; suffix is appended to the query (a row lock).
func getOrder(ctx context.Context, q store.Querier, orderID, suffix string) (contract.OrderRecord, bool, error) {
	o, err := scanOrder(q.QueryRow(ctx, "SELECT "+orderColumns+" FROM orders WHERE order_id = ?"+suffix, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return contract.OrderRecord{}, false, nil
	}
	if err != nil {
		return contract.OrderRecord{}, false, fmt.Errorf("read order %s: %w", orderID, err)
	}
	return o, true, nil
}

// Get returns one order, or an error wrapping ErrUnknownOrder.
func (p *Projection) Get(ctx context.Context, orderID string) (contract.OrderRecord, error) {
	o, found, err := getOrder(ctx, p.db, orderID, "")
	if err != nil {
		return contract.OrderRecord{}, fmt.Errorf("orders: %w", err)
	}
	if !found {
		return contract.OrderRecord{}, fmt.Errorf("%w %q", ErrUnknownOrder, orderID)
	}
	return o, nil
}

// List returns a customer's orders, newest first by creation time, at most
// q.EffectiveLimit() of them, optionally only those with q.Status.
func (p *Projection) List(ctx context.Context, q events.OrdersListQuery) ([]contract.OrderRecord, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("orders: list: %w", err)
	}
	var (
		where = []string{"customer_id = ?"}
		args  = []any{q.CustomerID}
	)
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(q.Status))
	}
	args = append(args, q.EffectiveLimit())
	rows, err := p.db.Query(ctx, "SELECT "+orderColumns+" FROM orders WHERE "+strings.Join(where, " AND ")+
		" ORDER BY created_at DESC, order_id DESC LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("orders: list for %s: %w", q.CustomerID, err)
	}
	defer rows.Close()
	out := []contract.OrderRecord{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("orders: list for %s: %w", q.CustomerID, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("orders: list for %s: %w", q.CustomerID, err)
	}
	return out, nil
}

// Prune deletes the ids of the events applied longer ago than
// Config.AppliedEventsRetention and returns how many went; with a negative
// retention it deletes nothing.
func (p *Projection) Prune(ctx context.Context) (int64, error) {
	if p.cfg.AppliedEventsRetention < 0 {
		return 0, nil
	}
	cutoff := p.clock().Add(-p.cfg.AppliedEventsRetention).UnixMicro()
	res, err := p.db.Exec(ctx, "DELETE FROM orders_applied_events WHERE applied_at < ?", cutoff)
	if err != nil {
		return 0, fmt.Errorf("orders: prune applied events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("orders: prune applied events: %w", err)
	}
	return n, nil
}

// HandleEvent is the projection consumer's amqp.Handler: it decodes the
// envelope and applies it. An undecodable or invalid event is dead-lettered
// at once; an event type the read model does not follow is acked.
func (p *Projection) HandleEvent(ctx context.Context, d amqp.Delivery) error {
	env, payload, err := amqp.EnvelopeFromDelivery(d)
	if err != nil {
		return amqp.Permanent(fmt.Errorf("orders: %w", err))
	}
	_, err = p.Apply(ctx, env, payload)
	return err
}
