package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ClaimCommand records a command id in the consumer's inbox inside the
// transaction. It returns claimed=true the first time the id is seen; for a
// repeated id it returns claimed=false and the reply stored when the command
// was first handled (nil if that handling stored none). Two transactions
// claiming one id at once serialize on the inbox key: the second waits for
// the first and then sees the id as taken.
func (tx *Tx) ClaimCommand(ctx context.Context, consumer, commandID, commandType string) (claimed bool, storedReply []byte, err error) {
	res, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, command_id, command_type, received_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (consumer, command_id) DO NOTHING`, consumer, commandID, commandType, nowMicros())
	if err != nil {
		return false, nil, fmt.Errorf("store: inbox insert %s: %w", commandID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, nil, fmt.Errorf("store: inbox insert %s: %w", commandID, err)
	}
	if n == 1 {
		return true, nil, nil
	}
	var reply sql.NullString
	err = tx.QueryRow(ctx, "SELECT reply FROM inbox WHERE consumer = ? AND command_id = ?", consumer, commandID).Scan(&reply)
	if err != nil {
		return false, nil, fmt.Errorf("store: inbox read %s: %w", commandID, err)
	}
	if !reply.Valid {
		return false, nil, nil
	}
	return false, []byte(reply.String), nil
}

// StoreReply keeps the reply of a command claimed in this transaction, so
// that a repeated command id is answered with the same bytes.
func (tx *Tx) StoreReply(ctx context.Context, consumer, commandID string, reply []byte) error {
	res, err := tx.Exec(ctx, "UPDATE inbox SET reply = ? WHERE consumer = ? AND command_id = ?", string(reply), consumer, commandID)
	if err != nil {
		return fmt.Errorf("store: inbox store reply %s: %w", commandID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(fmt.Errorf("store: inbox store reply %s: command not claimed", commandID), err)
	}
	return nil
}

// InboxReply returns the stored reply of a handled command, or found=false.
func (db *DB) InboxReply(ctx context.Context, consumer, commandID string) (reply []byte, found bool, err error) {
	var r sql.NullString
	err = db.QueryRow(ctx, "SELECT reply FROM inbox WHERE consumer = ? AND command_id = ?", consumer, commandID).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: inbox read %s: %w", commandID, err)
	}
	return []byte(r.String), true, nil
}

// PruneInbox deletes the consumer's inbox rows received before cutoff and
// returns how many went. A command id pruned is no longer recognised as a
// repeat.
func (db *DB) PruneInbox(ctx context.Context, consumer string, cutoff time.Time) (int64, error) {
	res, err := db.Exec(ctx, "DELETE FROM inbox WHERE consumer = ? AND received_at < ?", consumer, cutoff.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("store: prune inbox of %s: %w", consumer, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: prune inbox of %s: %w", consumer, err)
	}
	return n, nil
}
