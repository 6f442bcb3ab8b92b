// Package inventory is the inventory participant service: stock per sku
// (on hand, reserved, available = on hand − reserved) and reservations that
// hold stock for an order until they are committed (sold) or released. It
// takes inventory.restock, inventory.reserve, inventory.release and
// inventory.commit from its RabbitMQ queue, answers inventory.stock and
// inventory.reservations, and publishes inventory.reserved,
// inventory.committed and inventory.released.
//
// Business rules:
//   - A reservation of several lines holds all of them or none; a rejection
//     lists every failing line in the reply's Result
//     (contract.InventoryReserveResult).
//   - Reserving an existing reservation id again with the same lines is
//     accepted and changes nothing; with other lines it is rejected with
//     reservation_exists.
//   - Releasing a released reservation and committing a committed one are
//     accepted and change nothing; committing a released one, or releasing a
//     committed one, is rejected with reservation_not_held.
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/store"
)

// ServiceName is the source of the inventory's envelopes and the name of its
// inbox and outbox.
const ServiceName = "inventory"

// ErrUnknownReservation is returned by Reservation for an unknown id.
var ErrUnknownReservation = errors.New("inventory: unknown reservation")

// Config configures the inventory service.
type Config struct {
	// Queue is the command queue. Default contract.InventoryQueue
	// ("inventory.commands").
	Queue string
	// Concurrency is the number of commands handled at once. Default 16.
	Concurrency int
	// Relay configures the outbox relay (its Producer is set by the service).
	Relay store.RelayConfig
	// Exchange is the event exchange the service's events are published to:
	// the Exchange of the connection it runs on. Default
	// amqp.DefaultExchange ("sagas.events").
	Exchange string
}

func (c *Config) setDefaults() {
	if c.Queue == "" {
		c.Queue = contract.InventoryQueue
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 0 {
		errs = append(errs, errors.New("inventory: Concurrency must not be negative"))
	}
	return errors.Join(errs...)
}

var migrations = []store.Migration{
	{
		Version: 1,
		Name:    "stock and reservations",
		Statements: []string{
			`CREATE TABLE inventory_stock (
				sku        TEXT PRIMARY KEY,
				on_hand    BIGINT NOT NULL CHECK (on_hand >= 0),
				reserved   BIGINT NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
				updated_at BIGINT NOT NULL)`,
			`CREATE TABLE inventory_reservations (
				reservation_id TEXT PRIMARY KEY,
				order_id       TEXT NOT NULL,
				state          TEXT NOT NULL,
				reason         TEXT NOT NULL,
				created_at     BIGINT NOT NULL,
				updated_at     BIGINT NOT NULL)`,
			`CREATE TABLE inventory_reservation_lines (
				reservation_id TEXT NOT NULL REFERENCES inventory_reservations (reservation_id),
				sku            TEXT NOT NULL,
				quantity       BIGINT NOT NULL,
				PRIMARY KEY (reservation_id, sku))`,
			`CREATE INDEX inventory_reservations_order ON inventory_reservations (order_id)`,
		},
	},
}

// Service is the inventory.
type Service struct {
	db   *store.DB
	cfg  Config
	proc *command.Processor
}

// New builds the service on db. It does no I/O: call Migrate before Run or
// any query.
func New(db *store.DB, cfg Config) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	proc, err := command.NewProcessor(db, command.Config{Service: ServiceName, InvalidPayload: invalidQuantity, Exchange: cfg.Exchange})
	if err != nil {
		return nil, err
	}
	s := &Service{db: db, cfg: cfg, proc: proc}
	proc.Handle(events.CmdInventoryRestock, s.restock)
	proc.Handle(events.CmdInventoryReserve, s.reserve)
	proc.Handle(events.CmdInventoryRelease, s.release)
	proc.Handle(events.CmdInventoryCommit, s.commit)
	proc.Query(events.QueryInventoryStock, func(ctx context.Context, q command.Command) (any, error) {
		return s.Stock(ctx, q.Payload.(events.InventoryStockQuery).SKUs...)
	})
	proc.Query(events.QueryInventoryReservations, func(ctx context.Context, q command.Command) (any, error) {
		p := q.Payload.(events.InventoryReservationsQuery)
		return s.Reservations(ctx, p.ReservationID, p.OrderID)
	})
	return s, nil
}

// Migrate applies the inventory's schema migrations to its store, giving up
// when ctx ends. It is idempotent and safe to run from several processes at
// once.
func (s *Service) Migrate(ctx context.Context) error {
	if err := s.db.Migrate(ctx, ServiceName, migrations); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}

var quantityField = regexp.MustCompile(`^(quantity|lines\[\d+\]\.quantity)$`)

// invalidQuantity maps a payload whose only problems are non-positive
// quantities to an invalid_quantity rejection.
func invalidQuantity(fields []*events.FieldError) (string, bool) {
	for _, f := range fields {
		if !quantityField.MatchString(f.Field) {
			return "", false
		}
	}
	return events.ReasonInvalidQuantity, true
}

// Run consumes the command queue and relays the outbox until ctx ends.
func (s *Service) Run(ctx context.Context, conn *amqp.Conn) error {
	srv, err := command.NewServer(conn, s.db, s.proc, command.ServeConfig{
		Queue: s.cfg.Queue, Concurrency: s.cfg.Concurrency, Relay: s.cfg.Relay,
	})
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return srv.Run(ctx)
}

// Stock returns the stock levels of the skus (of every sku when none is
// given), ordered by sku; unknown skus are left out.
func (s *Service) Stock(ctx context.Context, skus ...string) ([]contract.StockLevel, error) {
	rows, err := s.db.Query(ctx, "SELECT sku, on_hand, reserved FROM inventory_stock ORDER BY sku")
	if err != nil {
		return nil, fmt.Errorf("inventory: stock: %w", err)
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, k := range skus {
		want[k] = true
	}
	out := []contract.StockLevel{}
	for rows.Next() {
		var st contract.StockLevel
		if err := rows.Scan(&st.SKU, &st.OnHand, &st.Reserved); err != nil {
			return nil, fmt.Errorf("inventory: stock: %w", err)
		}
		if len(want) > 0 && !want[st.SKU] {
			continue
		}
		st.Available = st.OnHand - st.Reserved
		out = append(out, st)
	}
	return out, rows.Err()
}

// Reservations returns reservations with their state, filtered by
// reservation id and order id when they are not empty.
func (s *Service) Reservations(ctx context.Context, reservationID, orderID string) ([]contract.StockReservation, error) {
	rows, err := s.db.Query(ctx, `SELECT r.reservation_id, r.order_id, r.state, r.reason, l.sku, l.quantity
		FROM inventory_reservations r JOIN inventory_reservation_lines l ON l.reservation_id = r.reservation_id
		WHERE (? = '' OR r.reservation_id = ?) AND (? = '' OR r.order_id = ?)
		ORDER BY r.created_at, r.reservation_id, l.sku`, reservationID, reservationID, orderID, orderID)
	if err != nil {
		return nil, fmt.Errorf("inventory: reservations: %w", err)
	}
	defer rows.Close()
	out := []contract.StockReservation{}
	for rows.Next() {
		var (
			r contract.StockReservation
			l events.StockLine
		)
		if err := rows.Scan(&r.ReservationID, &r.OrderID, &r.State, &r.Reason, &l.SKU, &l.Quantity); err != nil {
			return nil, fmt.Errorf("inventory: reservations: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].ReservationID == r.ReservationID {
			out[n-1].Lines = append(out[n-1].Lines, l)
			continue
		}
		r.Lines = []events.StockLine{l}
		out = append(out, r)
	}
	return out, rows.Err()
}

// --- command handlers ---

func (s *Service) restock(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.InventoryRestock)
	if p.Quantity <= 0 {
		return command.Reject(events.ReasonInvalidQuantity, "quantity must be positive", nil), nil
	}
	now := time.Now().UnixMicro()
	if _, err := tx.Exec(ctx, `INSERT INTO inventory_stock (sku, on_hand, reserved, updated_at) VALUES (?, ?, 0, ?)
		ON CONFLICT (sku) DO UPDATE SET on_hand = inventory_stock.on_hand + excluded.on_hand, updated_at = excluded.updated_at`,
		p.SKU, p.Quantity, now); err != nil {
		return command.Outcome{}, fmt.Errorf("restock %s: %w", p.SKU, err)
	}
	st, err := stockOf(ctx, tx, p.SKU)
	if err != nil {
		return command.Outcome{}, err
	}
	return command.Accept(st), nil
}

// stockOf reads one sku's stock inside the transaction, locking the row on
// PostgreSQL; found is false for an unknown sku.
func stockOf(ctx context.Context, tx *store.Tx, sku string) (contract.StockLevel, error) {
	st := contract.StockLevel{SKU: sku}
	err := tx.QueryRow(ctx, "SELECT on_hand, reserved FROM inventory_stock WHERE sku = ?"+tx.DB().ForUpdate(), sku).Scan(&st.OnHand, &st.Reserved)
	if err != nil {
		return contract.StockLevel{}, err
	}
	st.Available = st.OnHand - st.Reserved
	return st, nil
}

// mergeLines adds up the lines of one sku and orders them by sku, the order
// rows are locked in, so two reservations never deadlock.
func mergeLines(lines []events.StockLine) []events.StockLine {
	sum := map[string]int64{}
	for _, l := range lines {
		sum[l.SKU] += l.Quantity
	}
	out := make([]events.StockLine, 0, len(sum))
	for sku, q := range sum {
		out = append(out, events.StockLine{SKU: sku, Quantity: q})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SKU < out[j].SKU })
	return out
}

func (s *Service) reserve(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.InventoryReserve)
	lines := mergeLines(p.Lines)
	existing, err := reservationOf(ctx, tx, p.ReservationID)
	switch {
	case err == nil:
		if sameLines(existing.Lines, lines) {
			return command.Accept(contract.InventoryReserveResult{Reservation: &existing}), nil
		}
		return command.Reject(contract.ReasonReservationExists,
			fmt.Sprintf("reservation %s exists with other lines", p.ReservationID), contract.InventoryReserveResult{Reservation: &existing}), nil
	case !errors.Is(err, ErrUnknownReservation):
		return command.Outcome{}, err
	}
	var failed []contract.FailedStockLine
	for _, l := range lines {
		if l.Quantity <= 0 {
			failed = append(failed, contract.FailedStockLine{SKU: l.SKU, Requested: l.Quantity, Reason: events.ReasonInvalidQuantity})
			continue
		}
		st, err := stockOf(ctx, tx, l.SKU)
		if errors.Is(err, sql.ErrNoRows) {
			failed = append(failed, contract.FailedStockLine{SKU: l.SKU, Requested: l.Quantity, Reason: events.ReasonUnknownSKU})
			continue
		}
		if err != nil {
			return command.Outcome{}, fmt.Errorf("reserve %s: %w", l.SKU, err)
		}
		if st.Available < l.Quantity {
			failed = append(failed, contract.FailedStockLine{SKU: l.SKU, Requested: l.Quantity, Available: st.Available, Reason: events.ReasonInsufficientStock})
		}
	}
	if len(failed) > 0 {
		// The most fundamental failure names the rejection: a sku that does
		// not exist cannot be fixed by restocking later.
		reason := events.ReasonInsufficientStock
		for _, f := range failed {
			if f.Reason == events.ReasonInvalidQuantity {
				reason = f.Reason
				break
			}
			if f.Reason == events.ReasonUnknownSKU {
				reason = f.Reason
			}
		}
		return command.Reject(reason, fmt.Sprintf("%d of %d lines cannot be reserved", len(failed), len(lines)),
			contract.InventoryReserveResult{FailedLines: failed}), nil
	}
	now := time.Now().UnixMicro()
	if _, err := tx.Exec(ctx, `INSERT INTO inventory_reservations (reservation_id, order_id, state, reason, created_at, updated_at)
		VALUES (?, ?, ?, '', ?, ?)`, p.ReservationID, p.OrderID, string(contract.StockReservationHeld), now, now); err != nil {
		return command.Outcome{}, fmt.Errorf("reserve %s: %w", p.ReservationID, err)
	}
	for _, l := range lines {
		if _, err := tx.Exec(ctx, "INSERT INTO inventory_reservation_lines (reservation_id, sku, quantity) VALUES (?, ?, ?)",
			p.ReservationID, l.SKU, l.Quantity); err != nil {
			return command.Outcome{}, fmt.Errorf("reserve %s: %w", p.ReservationID, err)
		}
		if _, err := tx.Exec(ctx, "UPDATE inventory_stock SET reserved = reserved + ?, updated_at = ? WHERE sku = ?",
			l.Quantity, now, l.SKU); err != nil {
			return command.Outcome{}, fmt.Errorf("reserve %s: %w", l.SKU, err)
		}
	}
	r := contract.StockReservation{ReservationID: p.ReservationID, OrderID: p.OrderID, State: contract.StockReservationHeld, Lines: lines}
	return command.Accept(contract.InventoryReserveResult{Reservation: &r}, command.Event{
		Type: events.TypeInventoryReserved, Subject: p.ReservationID,
		Payload: events.InventoryReserved{ReservationID: p.ReservationID, OrderID: p.OrderID, Lines: lines},
	}), nil
}

func sameLines(a, b []events.StockLine) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// reservationOf reads a reservation inside the transaction, locking it on
// PostgreSQL, with its lines ordered by sku.
func reservationOf(ctx context.Context, tx *store.Tx, id string) (contract.StockReservation, error) {
	r := contract.StockReservation{ReservationID: id}
	err := tx.QueryRow(ctx, "SELECT order_id, state, reason FROM inventory_reservations WHERE reservation_id = ?"+tx.DB().ForUpdate(), id).
		Scan(&r.OrderID, &r.State, &r.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.StockReservation{}, fmt.Errorf("%w %q", ErrUnknownReservation, id)
	}
	if err != nil {
		return contract.StockReservation{}, fmt.Errorf("read reservation %s: %w", id, err)
	}
	rows, err := tx.Query(ctx, "SELECT sku, quantity FROM inventory_reservation_lines WHERE reservation_id = ? ORDER BY sku", id)
	if err != nil {
		return contract.StockReservation{}, fmt.Errorf("read reservation %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l events.StockLine
		if err := rows.Scan(&l.SKU, &l.Quantity); err != nil {
			return contract.StockReservation{}, fmt.Errorf("read reservation %s: %w", id, err)
		}
		r.Lines = append(r.Lines, l)
	}
	return r, rows.Err()
}

func (s *Service) release(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.InventoryRelease)
	return s.settle(ctx, tx, p.ReservationID, contract.StockReservationReleased, p.Reason)
}

func (s *Service) commit(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.InventoryCommit)
	return s.settle(ctx, tx, p.ReservationID, contract.StockReservationCommitted, "")
}

// settle moves a held reservation to released or committed.
func (s *Service) settle(ctx context.Context, tx *store.Tx, id string, to contract.StockReservationState, reason string) (command.Outcome, error) {
	r, err := reservationOf(ctx, tx, id)
	if errors.Is(err, ErrUnknownReservation) {
		return command.Reject(events.ReasonUnknownReservation, err.Error(), nil), nil
	}
	if err != nil {
		return command.Outcome{}, err
	}
	switch r.State {
	case to:
		return command.Accept(contract.InventoryReserveResult{Reservation: &r}), nil
	case contract.StockReservationHeld:
	default:
		return command.Reject(events.ReasonReservationNotHeld,
			fmt.Sprintf("reservation %s is %s", id, r.State), contract.InventoryReserveResult{Reservation: &r}), nil
	}
	now := time.Now().UnixMicro()
	for _, l := range r.Lines {
		q := "UPDATE inventory_stock SET reserved = reserved - ?, updated_at = ? WHERE sku = ?"
		if to == contract.StockReservationCommitted {
			q = "UPDATE inventory_stock SET reserved = reserved - ?, on_hand = on_hand - ?, updated_at = ? WHERE sku = ?"
		}
		args := []any{l.Quantity, now, l.SKU}
		if to == contract.StockReservationCommitted {
			args = []any{l.Quantity, l.Quantity, now, l.SKU}
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return command.Outcome{}, fmt.Errorf("%s %s: %w", to, id, err)
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE inventory_reservations SET state = ?, reason = ?, updated_at = ? WHERE reservation_id = ?",
		string(to), reason, now, id); err != nil {
		return command.Outcome{}, fmt.Errorf("%s %s: %w", to, id, err)
	}
	r.State, r.Reason = to, reason
	ev := command.Event{Type: events.TypeInventoryCommitted, Subject: id,
		Payload: events.InventoryCommitted{ReservationID: id, OrderID: r.OrderID, Lines: r.Lines}}
	if to == contract.StockReservationReleased {
		ev = command.Event{Type: events.TypeInventoryReleased, Subject: id,
			Payload: events.InventoryReleased{ReservationID: id, OrderID: r.OrderID, Reason: reason, Lines: r.Lines}}
	}
	return command.Accept(contract.InventoryReserveResult{Reservation: &r}, ev), nil
}
