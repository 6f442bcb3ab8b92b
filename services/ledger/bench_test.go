package ledger

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command/commandtest"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// BenchmarkLedgerCommands measures deposits and withdrawals handled per
// second through RabbitMQ request-reply, 64 senders at once on 20 accounts,
// with the command→reply latency percentiles.
//
//	go test -run '^$' -bench BenchmarkLedgerCommands -benchtime 5000x ./services/ledger/
func BenchmarkLedgerCommands(b *testing.B) {
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			db := storetest.Open(b, engine)
			r := startLedger(b, db, Config{})
			const accounts, senders = 20, 64
			ids := make([]string, accounts)
			for i := range ids {
				ids[i] = "bench-" + uuid.NewString()[:8]
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				reply, _, err := commandtest.TryRequest(ctx, r.req, r.queue, commandtest.Envelope(b, events.CmdLedgerOpen,
					events.LedgerOpen{AccountID: ids[i], Currency: "EUR", InitialBalance: 1_000_000}))
				cancel()
				require.NoError(b, err)
				require.True(b, reply.Accepted())
			}
			latencies := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						acct := ids[rand.IntN(accounts)]
						var p events.Payload = events.LedgerDeposit{AccountID: acct, Amount: eur(10)}
						typ := events.CmdLedgerDeposit
						if i%2 == 1 {
							p, typ = events.LedgerWithdraw{AccountID: acct, Amount: eur(10)}, events.CmdLedgerWithdraw
						}
						env, err := events.New(typ, "bench", p)
						if err != nil {
							b.Error(err)
							return
						}
						ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
						t0 := time.Now()
						_, _, err = commandtest.TryRequest(ctx, r.req, r.queue, env)
						latencies[i] = time.Since(t0)
						cancel()
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}
