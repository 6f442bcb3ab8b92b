package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/store"
)

// migrations is the ledger's schema. The primary key (stream_id, version) is
// the optimistic-concurrency check: two appends at one version cannot both
// commit.
var migrations = []store.Migration{
	{
		Version: 1,
		Name:    "event streams and snapshots",
		Statements: []string{
			`CREATE TABLE ledger_events (
				stream_id      TEXT NOT NULL,
				version        BIGINT NOT NULL,
				event_type     TEXT NOT NULL,
				data           TEXT NOT NULL,
				command_id     TEXT NOT NULL,
				correlation_id TEXT NOT NULL,
				recorded_at    BIGINT NOT NULL,
				PRIMARY KEY (stream_id, version))`,
			`CREATE TABLE ledger_snapshots (
				stream_id  TEXT PRIMARY KEY,
				version    BIGINT NOT NULL,
				state      TEXT NOT NULL,
				taken_at   BIGINT NOT NULL)`,
		},
	},
}

// eventStore reads and appends account streams.
type eventStore struct {
	snapshotEvery int64
}

// snapshot returns the latest snapshot of a stream, or the empty state.
func (s eventStore) snapshot(ctx context.Context, q store.Querier, id string) (contract.Account, error) {
	var state string
	err := q.QueryRow(ctx, "SELECT state FROM ledger_snapshots WHERE stream_id = ?", id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.Account{}, nil
	}
	if err != nil {
		return contract.Account{}, fmt.Errorf("read snapshot of %s: %w", id, err)
	}
	var a contract.Account
	if err := json.Unmarshal([]byte(state), &a); err != nil {
		return contract.Account{}, fmt.Errorf("decode snapshot of %s: %w", id, err)
	}
	return a, nil
}

// events returns the stream's events after version, in order.
func (s eventStore) events(ctx context.Context, q store.Querier, id string, after int64) ([]contract.AccountEvent, error) {
	rows, err := q.Query(ctx, `SELECT version, event_type, data, command_id, correlation_id, recorded_at
		FROM ledger_events WHERE stream_id = ? AND version > ? ORDER BY version`, id, after)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", id, err)
	}
	defer rows.Close()
	var out []contract.AccountEvent
	for rows.Next() {
		var (
			e        contract.AccountEvent
			data     string
			recorded int64
		)
		if err := rows.Scan(&e.Version, &e.Type, &data, &e.CommandID, &e.CorrelationID, &recorded); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", id, err)
		}
		e.AccountID = id
		e.Data = json.RawMessage(data)
		e.RecordedAt = time.UnixMicro(recorded).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", id, err)
	}
	return out, nil
}

// load is the account's state: its latest snapshot plus the events after it.
func (s eventStore) load(ctx context.Context, q store.Querier, id string) (contract.Account, error) {
	a, err := s.snapshot(ctx, q, id)
	if err != nil {
		return contract.Account{}, err
	}
	tail, err := s.events(ctx, q, id, a.Version)
	if err != nil {
		return contract.Account{}, err
	}
	return Fold(a, tail)
}

// replay is the account's state folded from its first event, ignoring
// snapshots; load must always agree with it.
func (s eventStore) replay(ctx context.Context, q store.Querier, id string) (contract.Account, error) {
	evs, err := s.events(ctx, q, id, 0)
	if err != nil {
		return contract.Account{}, err
	}
	return Fold(contract.Account{}, evs)
}

// newEvent is an event to append, before it has a version.
type newEvent struct {
	typ  string
	data any
}

// append adds events to a stream expected to be at state.Version, folds
// them into state, and writes a snapshot when the stream crossed a multiple
// of snapshotEvery. A concurrent append at the same version fails the unique
// key and is reported as command.ErrConflict.
func (s eventStore) append(ctx context.Context, tx *store.Tx, state contract.Account, id string, evs []newEvent, commandID, correlationID string) (contract.Account, error) {
	now := time.Now()
	before := state.Version
	for i, ne := range evs {
		data, err := json.Marshal(ne.data)
		if err != nil {
			return state, fmt.Errorf("encode %s: %w", ne.typ, err)
		}
		e := contract.AccountEvent{AccountID: id, Version: before + int64(i) + 1, Type: ne.typ, Data: data,
			CommandID: commandID, CorrelationID: correlationID, RecordedAt: now}
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_events
			(stream_id, version, event_type, data, command_id, correlation_id, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, e.Version, e.Type, string(data), commandID, correlationID, now.UnixMicro()); err != nil {
			if store.IsUniqueViolation(err) {
				return state, fmt.Errorf("append to %s at version %d: %w", id, e.Version, command.ErrConflict)
			}
			return state, fmt.Errorf("append to %s: %w", id, err)
		}
		if state, err = apply(state, e); err != nil {
			return state, err
		}
	}
	if s.snapshotEvery > 0 && state.Version/s.snapshotEvery > before/s.snapshotEvery {
		if err := s.writeSnapshot(ctx, tx, state); err != nil {
			return state, err
		}
	}
	return state, nil
}

func (s eventStore) writeSnapshot(ctx context.Context, tx *store.Tx, a contract.Account) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode snapshot of %s: %w", a.ID, err)
	}
	// The WHERE keeps a newer snapshot if two writers race; the stream's
	// unique key makes that impossible today, but it costs nothing.
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_snapshots (stream_id, version, state, taken_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state, taken_at = excluded.taken_at
		WHERE excluded.version > ledger_snapshots.version`, a.ID, a.Version, string(b), time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("write snapshot of %s: %w", a.ID, err)
	}
	return nil
}
