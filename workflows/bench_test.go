package workflows

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// benchConcurrency is how many transfers are in flight at once.
const benchConcurrency = 128

var benchWorker = worker.Options{MaxConcurrentActivityExecutionSize: 512, MaxConcurrentWorkflowTaskExecutionSize: 64}

// BenchmarkTransfer measures transfers per second and their latency on one
// dev server, once with the activities going through RabbitMQ to the ledger
// on SQLite and once with no-op activities of the same names (the cost of
// orchestration alone). Run with -benchtime=Nx to set the number of
// transfers.
func BenchmarkTransfer(b *testing.B) {
	b.Run("noop", func(b *testing.B) {
		c, queue := temporaltest.NewWorkerWithOptions(b, benchWorker, func(w worker.Worker) {
			w.RegisterWorkflow(TransferWorkflow)
			w.RegisterActivity(&scriptedLedger{})
		})
		accounts := []string{"bench-a", "bench-b", "bench-c", "bench-d"}
		benchTransfers(b, c, queue, accounts, temporaltest.TaskQueue(b))
	})
	b.Run("rabbitmq", func(b *testing.B) {
		s := startLiveSystem(b, benchWorker)
		accounts := s.openAccounts(b, 10, 1_000_000_000)
		benchTransfers(b, s.client, s.taskQueue, accounts, s.suffix)
	})
}

func benchTransfers(b *testing.B, c client.Client, queue string, accounts []string, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	latencies := make([]time.Duration, b.N)
	sem := make(chan struct{}, benchConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			in := contract.TransferInput{
				TransferID:      fmt.Sprintf("%s-%d-%d", prefix, b.N, i),
				SourceAccountID: accounts[i%len(accounts)],
				TargetAccountID: accounts[(i+1)%len(accounts)],
				Amount:          1 + int64(i%100), Currency: "EUR",
			}
			t0 := time.Now()
			run, err := c.ExecuteWorkflow(ctx, contract.TransferStartOptions(in.TransferID, queue), TransferWorkflow, in)
			var res contract.TransferResult
			if err == nil {
				err = run.Get(ctx, &res)
			}
			if err == nil && res.Outcome != contract.TransferCompleted {
				err = fmt.Errorf("transfer %s: %s %s", in.TransferID, res.Outcome, res.Reason)
			}
			latencies[i] = time.Since(t0)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	require.NoError(b, firstErr)
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "transfers/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Milliseconds()), "p99-ms")
}
