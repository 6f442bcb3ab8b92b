package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRunEndToEnd runs the benchmark's core with tiny numbers on a real dev
// server, RabbitMQ and worker process: every row must complete every saga
// and the report must have every column, so the command is known to work
// without spending minutes.
func TestRunEndToEnd(t *testing.T) {
	amqpURL := requireBrokerAndCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := Config{Sagas: 10, Repeats: 2, Concurrency: 5, Warmup: 1, Rows: []int{1, 2, 3, 4, 5}, HistorySample: 3,
		SkipGoBenchmarks: true, SkipCluster: true, TransferPollRPS: -1, AMQPURL: amqpURL, Command: "go test ./internal/bench"}
	var log strings.Builder
	rep, err := Run(ctx, cfg, &log)
	require.NoError(t, err, log.String())

	// Row 1 runs four times, with encrypted payloads, traced and on a
	// self-hosted Temporal, beside the rows 1 to 5.
	require.Len(t, rep.Rows, 8)
	wantRows := []RowSpec{{Row: 1}, {Row: 1, Encrypted: true}, {Row: 1, Traced: true}, {Row: 1, SelfHosted: true}, {Row: 2}, {Row: 3}, {Row: 4}, {Row: 5}}
	for i, row := range rep.Rows {
		require.Equal(t, wantRows[i], row.Spec)
		require.Equal(t, 10, row.Completed, "row %d: %s", row.Spec.Row, row.FirstError)
		require.Positive(t, row.Throughput)
		require.Len(t, row.Runs, 2, "every row ran twice")
		require.Contains(t, row.Runs, row.Throughput, "the row reports one of its runs")
		require.Positive(t, row.Latency.P50)
		require.Equal(t, 3, row.Sampled)
		require.Positive(t, row.WorkflowTasksPerSaga())
	}
	order, encrypted, traced, selfHosted, noop, empty := rep.Rows[0], rep.Rows[1], rep.Rows[2], rep.Rows[3], rep.Rows[4], rep.Rows[5]
	servers := map[string]bool{}
	for _, row := range rep.Rows {
		require.NotEmpty(t, row.Server)
		servers[row.Server] = true
		require.Positive(t, row.Worker.Pollers)
		require.Equal(t, row.Broker, row.Worker.FromProcess, "a row through the worker reads its settings from the worker's /metrics")
		// The critical path lies within the latency the client measured
		// around it.
		require.LessOrEqual(t, row.Times.Total(), row.SampledLatency, "row %d", row.Spec.Row)
		require.Positive(t, row.Times.FirstTaskQueue+row.Times.WorkflowTaskRun)
	}
	require.Len(t, servers, len(rep.Rows), "every row ran on a dev server of its own")
	require.Equal(t, WorkerSettings{Pollers: 4, MaxConcurrentWorkflowTasks: 200, MaxConcurrentActivities: 200, FromProcess: true}, order.Worker,
		"the worker process's defaults, as it states them")
	require.InDelta(t, order.WorkflowTasksPerSaga(), encrypted.WorkflowTasksPerSaga(), 1e-9, "encryption changes no task")
	require.InDelta(t, order.WorkflowTasksPerSaga(), traced.WorkflowTasksPerSaga(), 1e-9, "tracing changes no task")
	require.Zero(t, order.Spans, "the untraced row exports nothing")
	require.InDelta(t, order.WorkflowTasksPerSaga(), selfHosted.WorkflowTasksPerSaga(), 1e-9, "the server as users self-host it runs the same tasks")
	require.Positive(t, selfHosted.CPU.DevServer, "the self-hosted server's processes are measured")
	// Every saga's start, workflows, activities, commands, replies and
	// transactions are spans: far more than one per saga.
	require.Greater(t, traced.Spans, int64(10*(cfg.Sagas+cfg.Warmup)), "the traced row exported its sagas' spans")
	require.InDelta(t, 2.0, order.WorkflowsPerSaga(), 1e-9, "an order is its workflow and its payment child")
	require.InDelta(t, order.ActivityTasksPerSaga(), noop.ActivityTasksPerSaga(), 1e-9, "the no-op row runs the same steps")
	require.InDelta(t, 1.0, empty.WorkflowTasksPerSaga(), 1e-9)
	require.Zero(t, empty.ActivityTasksPerSaga())
	transfer, transferNoop := rep.Rows[6], rep.Rows[7]
	require.InDelta(t, 1.0, transfer.WorkflowsPerSaga(), 1e-9, "a transfer is one workflow")
	require.InDelta(t, transfer.ActivityTasksPerSaga(), transferNoop.ActivityTasksPerSaga(), 1e-9, "the no-op row runs the same steps")
	require.True(t, transfer.Broker)
	require.True(t, order.Broker)
	require.Positive(t, order.PublishedPerSec)
	require.Positive(t, order.PeakRSS)

	var b strings.Builder
	require.NoError(t, renderReport(&b, rep))
	require.Contains(t, b.String(), "| "+strings.Join(tableColumns, " | ")+" |")
	for _, title := range rowTitles {
		require.Contains(t, b.String(), title)
	}
	require.Contains(t, b.String(), "Row 1 ÷ row 2")
	require.Contains(t, b.String(), "Row 1 ÷ row 3")
	require.Contains(t, b.String(), "Row 4 ÷ row 5")
	require.Contains(t, b.String(), "of the unencrypted row")
	require.Contains(t, b.String(), "of the untraced row")
	require.Contains(t, b.String(), "Row 1 on a self-hosted Temporal")

	out, err := exec.Command("rabbitmqctl", "list_vhosts").Output()
	require.NoError(t, err)
	require.NotEmpty(t, rep.VHost)
	require.NotContains(t, string(out), rep.VHost, "the run deletes its vhost")
}

// fakeServer is a dev server that only counts.
type fakeServer struct {
	addr    string
	stopped *[]string
}

func (f fakeServer) Addr() string { return f.addr }
func (f fakeServer) PIDs() []int  { return nil }
func (f fakeServer) stop() error  { *f.stopped = append(*f.stopped, f.addr); return nil }

func TestEveryRunOfARowGetsAFreshServer(t *testing.T) {
	var started, stopped, ran []string
	start := func(_ context.Context, spec RowSpec) (rowServer, error) {
		require.Len(t, stopped, len(started), "the server of the run before is stopped before the next starts")
		addr := fmt.Sprintf("server-%d-rps-%d", len(started)+1, spec.TransferPollRPS)
		if spec.SelfHosted {
			addr = fmt.Sprintf("self-hosted-%d", len(started)+1)
		}
		started = append(started, addr)
		return fakeServer{addr: addr, stopped: &stopped}, nil
	}
	run := func(_ context.Context, srv rowServer, spec RowSpec) (RowResult, error) {
		ran = append(ran, fmt.Sprintf("row %d on %s", spec.Row, srv.Addr()))
		return RowResult{Spec: spec, Sagas: 1, Completed: 1, Throughput: 1, Server: srv.Addr()}, nil
	}
	specs := []RowSpec{{Row: 1}, {Row: 2}, {Row: 3, TransferPollRPS: 1000}, {Row: 1, SelfHosted: true}}
	rows, err := runPasses(context.Background(), io.Discard, Config{Repeats: 2, Sagas: 1, Concurrency: 1}, specs, start, run)
	require.NoError(t, err)
	require.Len(t, rows, 4)
	require.Equal(t, []string{
		"row 1 on server-1-rps-0", "row 2 on server-2-rps-0", "row 3 on server-3-rps-1000", "row 1 on self-hosted-4",
		"row 2 on server-5-rps-0", "row 3 on server-6-rps-1000", "row 1 on self-hosted-7", "row 1 on server-8-rps-0",
	}, ran, "one server per run of a row, with the row's setting; the second pass starts one row later")
	require.Equal(t, started, stopped, "every server is stopped")
}

// TestRunLoadTellsWhichSagasCompleted: only completed sagas have their
// histories read; one whose start failed has none.
func TestRunLoadTellsWhichSagasCompleted(t *testing.T) {
	res := runLoad(context.Background(), 4, 2, func(_ context.Context, i int) (string, error) {
		if i%2 == 1 {
			return fmt.Sprint("saga-", i), fmt.Errorf("start saga-%d: deadline exceeded", i)
		}
		return fmt.Sprint("saga-", i), nil
	})
	require.Equal(t, []bool{true, false, true, false}, res.ok)
	require.Equal(t, 2, res.completed)
	require.ErrorContains(t, res.firstError, "deadline exceeded")
}
