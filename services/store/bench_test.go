package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/services/store"
)

// BenchmarkCommandTransaction is the transaction every command of a
// service runs on SQLite: claim the id in the inbox, change a row, keep the
// reply and write it with an event to the outbox.
//
//	go test -run '^$' -bench BenchmarkCommandTransaction ./services/store/
func BenchmarkCommandTransaction(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(ctx, b.TempDir()+"/bench.db")
	require.NoError(b, err)
	defer db.Close()
	_, err = db.Exec(ctx, "CREATE TABLE balances (id TEXT PRIMARY KEY, amount BIGINT NOT NULL)")
	require.NoError(b, err)
	_, err = db.Exec(ctx, "INSERT INTO balances (id, amount) VALUES ('a', 0)")
	require.NoError(b, err)
	body := []byte(`{"specversion":"1.0","id":"x","type":"funds.deposited","data":{"amount":10}}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprint("cmd-", i)
		require.NoError(b, db.InTx(ctx, func(tx *store.Tx) error {
			claimed, _, err := tx.ClaimCommand(ctx, "bench", id, "ledger.deposit")
			if err != nil || !claimed {
				return fmt.Errorf("claim %s: %v %w", id, claimed, err)
			}
			var amount int64
			if err := tx.QueryRow(ctx, "SELECT amount FROM balances WHERE id = ?", "a").Scan(&amount); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE balances SET amount = ? WHERE id = ?", amount+10, "a"); err != nil {
				return err
			}
			if err := tx.StoreReply(ctx, "bench", id, body); err != nil {
				return err
			}
			return tx.Enqueue(ctx, "bench",
				store.OutboxMessage{Exchange: "sagas.events", RoutingKey: "funds.deposited", ID: id + "/event", Type: "funds.deposited", Body: body},
				store.OutboxMessage{RoutingKey: "sagas.replies", ID: id + "/reply", Type: "command.replied", Body: body})
		}))
	}
}
