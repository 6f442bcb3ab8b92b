// Package store is the database layer of the participant services: one
// abstraction over database/sql with two engines, SQLite (embedded, the
// default) and PostgreSQL (selected by a postgres:// DSN), plus the schema
// migrations, the inbox that makes command handling idempotent, the outbox
// that makes publishing atomic with the state change, and the relay that
// drains the outbox through a Publisher. The package knows no broker: the
// amqp publisher is adapted to Publisher where the relay is wired
// (services/command).
//
// Every SQL difference between the engines (placeholders, row locking, the
// auto-increment key, error codes) is handled in this package; callers write
// `?` placeholders and portable SQL.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Engine names a database engine.
type Engine string

const (
	// SQLite is the embedded engine, a single file opened in WAL mode.
	SQLite Engine = "sqlite"
	// Postgres is PostgreSQL through pgx.
	Postgres Engine = "postgres"
)

// Config configures Open.
type Config struct {
	// DSN selects the engine: "postgres://" or "postgresql://" opens
	// PostgreSQL; anything else is a SQLite file path or "file:" URI.
	// Required.
	DSN string
	// MaxOpenConns bounds the PostgreSQL pool, or the SQLite reader pool
	// (SQLite always writes through a single connection). Default 16.
	MaxOpenConns int
	// BusyTimeout is how long a SQLite connection waits on a lock held by
	// another process before failing with SQLITE_BUSY. Default 5s.
	BusyTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 16
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 5 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("store: DSN is required"))
	}
	if c.MaxOpenConns < 0 {
		errs = append(errs, errors.New("store: MaxOpenConns must not be negative"))
	}
	if c.BusyTimeout < 0 {
		errs = append(errs, errors.New("store: BusyTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// DB is an open store. It is safe for concurrent use.
type DB struct {
	engine Engine
	// write takes every read-write transaction. On SQLite it is a single
	// connection, because SQLite has one writer and a pool of writers only
	// trades throughput for SQLITE_BUSY errors; on PostgreSQL it is the
	// same pool as read.
	write *sql.DB
	// read serves read-only queries; on SQLite it is a separate pool of
	// query-only connections that WAL lets run beside the writer.
	read *sql.DB
	// writeStmts and readStmts are the prepared statements of the SQLite
	// pools; nil on PostgreSQL.
	writeStmts, readStmts *stmtCache

	mu      sync.Mutex
	wakers  []chan struct{}
	closeMu sync.Once
}

// Open opens the store the DSN names and applies the store's own schema
// migrations (schema_migrations, inbox, outbox).
func Open(ctx context.Context, dsn string) (*DB, error) {
	return OpenConfig(ctx, Config{DSN: dsn})
}

// OpenConfig is Open with a full configuration.
func OpenConfig(ctx context.Context, cfg Config) (*DB, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		db  *DB
		err error
	)
	if strings.HasPrefix(cfg.DSN, "postgres://") || strings.HasPrefix(cfg.DSN, "postgresql://") {
		db, err = openPostgres(cfg)
	} else {
		db, err = openSQLite(cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := db.write.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", db.engine, err)
	}
	if err := db.Migrate(ctx, "store", storeMigrations); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func openPostgres(cfg Config) (*DB, error) {
	pool, err := sql.Open("pgx", cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	pool.SetMaxOpenConns(cfg.MaxOpenConns)
	pool.SetMaxIdleConns(cfg.MaxOpenConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{engine: Postgres, write: pool, read: pool}, nil
}

func openSQLite(cfg Config) (*DB, error) {
	path := strings.TrimPrefix(cfg.DSN, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil, errors.New("store: empty SQLite path")
	}
	base := "file:" + path
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL is durable across application crashes in WAL mode; only a power
	// loss can lose the last transactions, the usual trade for an embedded store.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// BEGIN IMMEDIATE takes the write lock at the start of a transaction, so
	// a read-then-write transaction never deadlocks on a lock upgrade.
	wq := url.Values{}
	for k, v := range q {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", base+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)

	rq := url.Values{}
	for k, v := range q {
		rq[k] = v
	}
	rq.Add("_pragma", "query_only(ON)")
	read, err := sql.Open("sqlite", base+"?"+rq.Encode())
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	read.SetMaxOpenConns(cfg.MaxOpenConns)
	read.SetMaxIdleConns(cfg.MaxOpenConns)
	return &DB{engine: SQLite, write: write, read: read, writeStmts: newStmtCache(write), readStmts: newStmtCache(read)}, nil
}

// Engine reports which engine the store runs on.
func (db *DB) Engine() Engine { return db.engine }

// Close closes the connection pools.
func (db *DB) Close() error {
	var err error
	db.closeMu.Do(func() {
		err = errors.Join(db.writeStmts.close(), db.readStmts.close(), db.write.Close())
		if db.read != db.write {
			err = errors.Join(err, db.read.Close())
		}
	})
	return err
}

// Rebind rewrites a query written with `?` placeholders into the engine's
// placeholder syntax ($1, $2, … on PostgreSQL). Question marks inside string
// literals are left alone.
func (db *DB) Rebind(query string) string {
	if db.engine != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	inString := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inString = !inString
			b.WriteByte(c)
		case c == '?' && !inString:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ForUpdate is the row-locking suffix for a SELECT inside a read-write
// transaction: " FOR UPDATE" on PostgreSQL, nothing on SQLite, where the
// immediate transaction already holds the database's only write lock.
func (db *DB) ForUpdate() string {
	if db.engine == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// Query runs a read-only query outside a transaction.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := db.readStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.read.QueryContext(ctx, db.Rebind(query), args...)
}

// QueryRow runs a read-only single-row query outside a transaction.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.readStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.read.QueryRowContext(ctx, db.Rebind(query), args...)
}

// readStmt is the prepared statement of a read outside a transaction on
// SQLite, prepared on first use (the read pool has connections to spare),
// or nil.
func (db *DB) readStmt(ctx context.Context, query string) *sql.Stmt {
	if st := db.readStmts.lookup(query); st != nil || !db.readStmts.wanted(query) {
		return st
	}
	db.readStmts.prepare(ctx, query)
	return db.readStmts.lookup(query)
}

// Exec runs a statement outside an explicit transaction.
func (db *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return db.write.ExecContext(ctx, db.Rebind(query), args...)
}

// Tx is a read-write transaction. Its methods take `?` placeholders.
type Tx struct {
	db       *DB
	tx       *sql.Tx
	enqueued bool
	// unprepared are the queries run here that the write pool's statement
	// cache wants: prepared once the transaction has given back the pool's
	// only connection.
	unprepared []string
}

// DB returns the store the transaction belongs to.
func (tx *Tx) DB() *DB { return tx.db }

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := tx.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.tx.ExecContext(ctx, tx.db.Rebind(query), args...)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.tx.QueryContext(ctx, tx.db.Rebind(query), args...)
}

// QueryRow runs a single-row query in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, tx.db.Rebind(query), args...)
}

// stmt is the write pool's prepared statement of query bound to the
// transaction, or nil on PostgreSQL and for a query not prepared yet,
// which it notes for preparing after the transaction.
func (tx *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := tx.db.writeStmts.lookup(query); st != nil {
		return tx.tx.StmtContext(ctx, st)
	}
	if tx.db.writeStmts.wanted(query) {
		tx.unprepared = append(tx.unprepared, query)
	}
	return nil
}

// InTx runs fn in a read-write transaction and commits it when fn returns
// nil; any error rolls it back. After a commit that wrote outbox rows the
// relays are woken.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	tx := &Tx{db: db, tx: sqlTx}
	defer func() {
		if len(tx.unprepared) > 0 {
			db.writeStmts.prepare(ctx, tx.unprepared...)
		}
	}()
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreDone(sqlTx.Rollback()))
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if tx.enqueued {
		db.wake()
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// Waker returns a channel that receives a value after every commit that
// wrote outbox rows. Signals coalesce: one pending value stands for any
// number of commits.
func (db *DB) Waker() <-chan struct{} {
	ch := make(chan struct{}, 1)
	db.mu.Lock()
	db.wakers = append(db.wakers, ch)
	db.mu.Unlock()
	return ch
}

func (db *DB) wake() {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, ch := range db.wakers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// IsUniqueViolation reports whether err is a unique or primary-key
// constraint violation on either engine.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

// IsUnavailable reports whether err says the database could not be reached
// or went away under the transaction (PostgreSQL restarting, its connection
// refused or reset, the server shutting down or not yet accepting
// connections): the same transaction succeeds once it is back, so a
// command failing so is retried for as long as the outage lasts.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-57P03: admin, crash
		// shutdown, cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// IsRetryable reports whether err is a transient concurrency failure that a
// fresh transaction may not meet again: a serialization failure or deadlock
// on PostgreSQL, a busy or locked database on SQLite.
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// nowMicros is the store's clock: every timestamp column holds Unix
// microseconds in a BIGINT, which both engines store and compare alike.
func nowMicros() int64 { return time.Now().UnixMicro() }

// Querier is what reads need, satisfied by both *DB (outside a transaction)
// and *Tx (inside one), so one read function serves both.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
}
