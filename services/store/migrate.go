package store

import (
	"context"
	"fmt"
	"sort"
)

// Migration is one versioned step of a component's schema.
type Migration struct {
	// Version orders the steps of a component, starting at 1; an applied
	// version is never run again.
	Version int
	// Name describes the step in schema_migrations.
	Name string
	// Statements run on both engines unless PostgresStatements is set.
	Statements []string
	// PostgresStatements, when set, replace Statements on PostgreSQL.
	PostgresStatements []string
}

// migrationLockKey is the PostgreSQL advisory lock every migrating process
// takes, so that two processes starting at once apply each step once.
const migrationLockKey = 0x5a6a_f10e

// Migrate applies the component's migrations that schema_migrations does not
// list yet, each in its own transaction together with its bookkeeping row.
// It is idempotent: running it twice, or from two processes at once, applies
// every step exactly once (an advisory lock on PostgreSQL, the single write
// lock on SQLite).
func (db *DB) Migrate(ctx context.Context, component string, migrations []Migration) error {
	sorted := append([]Migration(nil), migrations...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Version < sorted[j].Version })
	for _, m := range sorted {
		if err := db.InTx(ctx, func(tx *Tx) error { return db.applyMigration(ctx, tx, component, m) }); err != nil {
			return fmt.Errorf("store: migrate %s to version %d (%s): %w", component, m.Version, m.Name, err)
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, tx *Tx, component string, m Migration) error {
	if db.engine == Postgres {
		// Transaction-scoped: released at commit or rollback, even if the
		// process dies, so a crashed migrator never wedges the next start.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(?)", int64(migrationLockKey)); err != nil {
			return fmt.Errorf("advisory lock: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component  TEXT NOT NULL,
		version    BIGINT NOT NULL,
		name       TEXT NOT NULL,
		applied_at BIGINT NOT NULL,
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE component = ? AND version = ?", component, m.Version).Scan(&n); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	if n > 0 {
		return nil
	}
	stmts := m.Statements
	if db.engine == Postgres && m.PostgresStatements != nil {
		stmts = m.PostgresStatements
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)",
		component, m.Version, m.Name, nowMicros()); err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	return nil
}

// AppliedVersions lists the versions of a component recorded in
// schema_migrations, in ascending order.
func (db *DB) AppliedVersions(ctx context.Context, component string) ([]int, error) {
	rows, err := db.Query(ctx, "SELECT version FROM schema_migrations WHERE component = ? ORDER BY version", component)
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("store: read schema_migrations: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// storeMigrations are the tables the store itself owns.
var storeMigrations = []Migration{
	{
		Version: 1,
		Name:    "inbox and outbox",
		Statements: []string{
			`CREATE TABLE inbox (
				consumer     TEXT NOT NULL,
				command_id   TEXT NOT NULL,
				command_type TEXT NOT NULL,
				reply        TEXT,
				received_at  BIGINT NOT NULL,
				PRIMARY KEY (consumer, command_id))`,
			`CREATE TABLE outbox (
				seq            INTEGER PRIMARY KEY AUTOINCREMENT,
				producer       TEXT NOT NULL,
				message_id     TEXT NOT NULL,
				exchange       TEXT NOT NULL,
				routing_key    TEXT NOT NULL,
				message_type   TEXT NOT NULL,
				correlation_id TEXT NOT NULL,
				envelope       TEXT NOT NULL,
				created_at     BIGINT NOT NULL,
				sent_at        BIGINT,
				last_error     TEXT)`,
			`CREATE INDEX outbox_pending ON outbox (producer, seq) WHERE sent_at IS NULL`,
		},
		PostgresStatements: []string{
			`CREATE TABLE inbox (
				consumer     TEXT NOT NULL,
				command_id   TEXT NOT NULL,
				command_type TEXT NOT NULL,
				reply        TEXT,
				received_at  BIGINT NOT NULL,
				PRIMARY KEY (consumer, command_id))`,
			`CREATE TABLE outbox (
				seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				producer       TEXT NOT NULL,
				message_id     TEXT NOT NULL,
				exchange       TEXT NOT NULL,
				routing_key    TEXT NOT NULL,
				message_type   TEXT NOT NULL,
				correlation_id TEXT NOT NULL,
				envelope       TEXT NOT NULL,
				created_at     BIGINT NOT NULL,
				sent_at        BIGINT,
				last_error     TEXT)`,
			`CREATE INDEX outbox_pending ON outbox (producer, seq) WHERE sent_at IS NULL`,
		},
	},
	{
		Version: 2,
		Name:    "outbox trace context",
		// The W3C trace context of the transaction that wrote a row, as
		// JSON; NULL for rows written with tracing off (and older rows).
		Statements: []string{`ALTER TABLE outbox ADD COLUMN trace_context TEXT`},
	},
	{
		Version: 3,
		Name:    "retention indexes",
		// The relay's sweep deletes rows older than their retention: by
		// these indexes, not by reading the whole table.
		Statements: []string{
			`CREATE INDEX inbox_received ON inbox (consumer, received_at)`,
			`CREATE INDEX outbox_sent ON outbox (producer, sent_at) WHERE sent_at IS NOT NULL`,
		},
	},
}
