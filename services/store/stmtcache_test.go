package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSQLiteStatementsArePreparedOnceAndReused(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir()+"/stmts.db")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(ctx, "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
	require.NoError(t, err)

	const insert = "INSERT INTO kv (k, v) VALUES (?, ?)"
	const read = "SELECT v FROM kv WHERE k = ?"
	before := db.writeStmts.len()
	for i := range 3 {
		require.NoError(t, db.InTx(ctx, func(tx *Tx) error {
			if _, err := tx.Exec(ctx, insert, fmt.Sprint("k", i), i); err != nil {
				return err
			}
			var v int
			if err := tx.QueryRow(ctx, read, fmt.Sprint("k", i)).Scan(&v); err != nil {
				return err
			}
			require.Equal(t, i, v, "the transaction reads its own write")
			return nil
		}))
		require.NotNil(t, db.writeStmts.lookup(insert), "prepared after the first transaction that ran it")
		require.NotNil(t, db.writeStmts.lookup(read))
	}
	require.Equal(t, before+2, db.writeStmts.len(), "one entry per query, however often it ran")

	var v int
	require.NoError(t, db.QueryRow(ctx, read, "k2").Scan(&v))
	require.Equal(t, 2, v)
	require.NotNil(t, db.readStmts.lookup(read), "reads outside a transaction are prepared on the read pool")
}

func TestSQLiteRolledBackTransactionWithCachedStatementsLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir()+"/rollback.db")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(ctx, "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
	require.NoError(t, err)
	const insert = "INSERT INTO kv (k, v) VALUES (?, ?)"
	require.NoError(t, db.InTx(ctx, func(tx *Tx) error { _, err := tx.Exec(ctx, insert, "a", 1); return err }))
	require.NotNil(t, db.writeStmts.lookup(insert))

	errBoom := fmt.Errorf("boom")
	err = db.InTx(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, insert, "b", 2); err != nil {
			return err
		}
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	_, err = db.Exec(ctx, "SELECT 1") // the write connection is free again
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRow(ctx, "SELECT COUNT(*) FROM kv").Scan(&n))
	require.Equal(t, 1, n, "the rolled-back insert through the cached statement is gone")

	err = db.InTx(ctx, func(tx *Tx) error { _, err := tx.Exec(ctx, insert, "a", 3); return err })
	require.True(t, IsUniqueViolation(err), "a cached statement reports constraint errors as before: %v", err)
}

func TestSQLiteStatementCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir()+"/bounded.db")
	require.NoError(t, err)
	defer db.Close()
	for i := range maxCachedStatements + 10 {
		q := fmt.Sprintf("SELECT %d", i)
		require.NoError(t, db.InTx(ctx, func(tx *Tx) error {
			var got int
			if err := tx.QueryRow(ctx, q).Scan(&got); err != nil {
				return err
			}
			require.Equal(t, i, got)
			return nil
		}))
	}
	require.Equal(t, maxCachedStatements, db.writeStmts.len())
	var got int
	require.NoError(t, db.InTx(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, fmt.Sprintf("SELECT %d", maxCachedStatements+5)).Scan(&got)
	}), "a query past the bound runs unprepared")
	require.Equal(t, maxCachedStatements+5, got)
}

func TestSQLiteStatementsAreClosedWithTheStore(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir()+"/close.db")
	require.NoError(t, err)
	require.NoError(t, db.InTx(ctx, func(tx *Tx) error { _, err := tx.Exec(ctx, "SELECT 1"); return err }))
	require.NotZero(t, db.writeStmts.len())
	require.NoError(t, db.Close())
	require.Zero(t, db.writeStmts.len())
	require.Zero(t, db.readStmts.len())
}
