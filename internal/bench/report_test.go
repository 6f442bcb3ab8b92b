package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
)

// traced gives a row the spans its receiver got.
func traced(r RowResult, spans int64) RowResult {
	r.Spans = spans
	return r
}

func sampleReport() *Report {
	cfg := Config{Command: "make bench"}
	cfg.setDefaults()
	row := func(spec RowSpec, tput float64, p50 time.Duration, broker bool) RowResult {
		r := RowResult{Spec: spec, Sagas: 1000, Completed: 1000, Elapsed: time.Minute, Throughput: tput,
			Latency: Latencies{P50: p50, P95: 2 * p50, P99: 3 * p50}, Alone: p50 / 4, Sampled: 50,
			Tasks: TaskCounts{Workflows: 150, WorkflowTasks: 850, ActivityTasks: 300}, Broker: broker}
		if broker {
			r.PublishedPerSec, r.PeakRSS = 140, 64<<20
		}
		return r
	}
	return &Report{
		Config:  cfg,
		Machine: Machine{CPU: "AMD EPYC", CPUs: 2, MemoryBytes: 24 << 30, OS: "Debian", Kernel: "6.1", Go: "go1.26.8", RabbitMQ: "3.10.8", TemporalCLI: "1.5.1", Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), LoadBefore: "5.0 5.0 5.0", LoadAfter: "6.0 6.0 6.0"},
		Elapsed: 10 * time.Minute,
		Rows: []RowResult{
			row(RowSpec{Row: 1}, 10, 9*time.Second, true),
			row(RowSpec{Row: 1, Encrypted: true}, 9.7, 9*time.Second, true),
			traced(row(RowSpec{Row: 1, Traced: true}, 9.2, 9*time.Second, true), 27000),
			row(RowSpec{Row: 1, Cluster: true}, 8.5, 10*time.Second, true),
			row(RowSpec{Row: 1, Pollers: 16}, 10.5, 9*time.Second, true),
			row(RowSpec{Row: 2}, 20, 5*time.Second, false),
			row(RowSpec{Row: 2, Eager: true}, 30, 3*time.Second, false),
			row(RowSpec{Row: 3}, 400, 250*time.Millisecond, false),
			row(RowSpec{Row: 3, TransferPollRPS: 1000}, 500, 200*time.Millisecond, false),
		},
		Publish: []GoBenchmark{
			{Name: "BenchmarkPublish/publishers=64/publisher", Metrics: map[string]float64{"msgs/s": 22000}},
			{Name: "BenchmarkPublish/publishers=64/raw-wait-each", Metrics: map[string]float64{"msgs/s": 2000}},
			{Name: "BenchmarkPublish/publishers=64/raw-pipelined", Metrics: map[string]float64{"msgs/s": 25000}},
			{Name: "BenchmarkPublish/publishers=1/publisher", Metrics: map[string]float64{"msgs/s": 2400}},
			{Name: "BenchmarkPublish/queue=quorum/publishers=64/publisher", Metrics: map[string]float64{"msgs/s": 11000}},
			{Name: "BenchmarkPublish/queue=quorum/publishers=64/raw-wait-each", Metrics: map[string]float64{"msgs/s": 1000}},
			{Name: "BenchmarkPublish/queue=quorum/publishers=64/raw-pipelined", Metrics: map[string]float64{"msgs/s": 12500}},
		},
		PublishCommand: "go test publish",
		Ledger:         []GoBenchmark{{Name: "BenchmarkLedgerCommands/sqlite", Metrics: map[string]float64{"cmds/s": 1207, "p50_ms": 50, "p99_ms": 101}}},
		Codec: []GoBenchmark{
			{Name: "BenchmarkCodec/plain/encode", Metrics: map[string]float64{"ns/op": 3129}},
			{Name: "BenchmarkCodec/plain/decode", Metrics: map[string]float64{"ns/op": 2355}},
			{Name: "BenchmarkCodec/compressed/encode", Metrics: map[string]float64{"ns/op": 60595}},
			{Name: "BenchmarkCodec/compressed/decode", Metrics: map[string]float64{"ns/op": 7205}},
		},
		LedgerCommand: "go test ledger",
	}
}

func TestRenderReport(t *testing.T) {
	var b strings.Builder
	require.NoError(t, renderReport(&b, sampleReport()))
	out := b.String()
	for _, want := range []string{
		"| " + strings.Join(tableColumns, " | ") + " |",
		// Row 1: 10 sagas/s, p50/p95/p99, 17 workflow tasks and 6 activity tasks per saga, 140 msgs/s.
		"| 1 | " + rowTitles[rowOrder] + " | pollers 4, eager start off, 1 RabbitMQ node, classic queues | 1,000 | 1,000 | 10.0 | 9,000 | 18,000 | 27,000 | 2,250 | 17.0 | 6.0 | 140 |",
		"| 3 | " + rowTitles[rowEmpty] + " | pollers 4, eager start off | 1,000 | 1,000 | 400.0 | 250 | 500 | 750 | 62 | 17.0 | 6.0 | — |",
		"Row 1 ÷ row 2 (the cost of RabbitMQ and the services): **0.50×**; target at\n  least 0.60×: not met.",
		"Row 1 ÷ row 3: **0.03×**",
		"VmHWM at the end of row 1): **64 MiB**",
		"Messages published per order saga by the worker: 14.0.",
		"| 2 | pollers 4, eager start on | 30.0 | 20.0 | +50% |",
		"Row 1 with 16 pollers instead of 4: 10.5 sagas/s against 10.0 (+5%)",
		"| 1 | pollers 4, eager start off, payloads encrypted, 1 RabbitMQ node, classic queues | 9.7 | 10.0 | -3% |",
		"| 1 | pollers 4, eager start off, 3-node RabbitMQ cluster, quorum queues, 2 orchestration workers + 1 services worker | 8.5 | 10.0 | -15% |",
		"÷ row 1 on one node with classic\n  queues: **0.85×** (8.5 against 10.0 sagas/s, p50 10,000 ms against 9,000 ms); target at least 0.80×: met.",
		"Row 1 with a 3-node RabbitMQ cluster and quorum queues, 2 orchestration workers and a services worker instead of one node",
		"it runs a third time on the production topology",
		"Row 1 with payloads encrypted (AES-256-GCM codec in the worker and the client): 9.7 sagas/s against 10.0 (-3%)",
		"Target ≥ 0.95× of the unencrypted row: 0.97× (medians), met.",
		"no difference beyond the noise",
		"Row 2 with eager workflow start: 30.0 sagas/s against 20.0 (+50%), p50 3,000 ms against 5,000 ms: it helped.",
		"server transfer-queue polls 1,000/s",
		"| classic | 64 | 22,000 | 2,000 | 25,000 | 11.00× | 0.88× | 1.00× |",
		"| quorum | 64 | 11,000 | 1,000 | 12,500 | 11.00× | 0.88× | 0.50× |",
		"into a classic queue and into a quorum queue",
		"(11.00×: met)",
		"| sqlite | 1,207 | 50 | 101 | met |",
		"| plain | 3.1 | 2.4 |",
		"| compressed | 60.6 | 7.2 |",
		"The codec itself takes 3.1 µs to encrypt and 2.4 µs to decrypt a payload",
		"Row 1 with tracing on (OpenTelemetry in the worker and the client, every span sampled, exported over OTLP/gRPC): 9.2 sagas/s against 10.0 (-8%)",
		"Target ≥ 0.90× of the untraced row: 0.92× (medians), met. Its receiver got 27,000 spans, 27.0 per saga.",
		"AMD EPYC × 2",
		"RabbitMQ | 3.10.8",
		"Temporal CLI | 1.5.1",
		"```\nmake bench\n```",
		"### Where the time goes",
		"| row | settings | latency ms | first wf task queue ms | wf task queue ms |",
	} {
		require.Contains(t, out, want)
	}
}

func TestRenderReportWithoutGoBenchmarksOrVariants(t *testing.T) {
	r := sampleReport()
	r.Publish, r.Ledger, r.Codec = nil, nil, nil
	r.Rows = r.Rows[:1]
	r.Rows[0].Completed, r.Rows[0].FirstError = 998, "order-x: timeout"
	var b strings.Builder
	require.NoError(t, renderReport(&b, r))
	out := b.String()
	require.Contains(t, out, "Skipped in this run (`--skip-go-benchmarks`).")
	require.Contains(t, out, "No variants ran")
	require.Contains(t, out, "2 of 1000 sagas did not complete; first failure: `order-x: timeout`")
	require.Len(t, r.Incomplete(), 1)
	require.ErrorContains(t, incompleteError(r.Incomplete()), "998 of 1000 sagas completed")
}

func TestRepeatedRowsShowTheirRangeAndDifferOnlyWhenRangesDoNotOverlap(t *testing.T) {
	r := sampleReport()
	r.Rows = []RowResult{r.Rows[0], r.Rows[1], r.Rows[4]} // row 1, encrypted, 16 pollers
	r.Rows[0].Runs = []float64{9.0, 10.0, 11.0}           // default row 1
	r.Rows[1].Runs = []float64{9.7, 9.2, 10.4}            // encrypted: overlaps
	r.Rows[2].Runs = []float64{12.0, 10.5, 11.5}          // 16 pollers: overlaps at 11
	var b strings.Builder
	require.NoError(t, renderReport(&b, r))
	out := b.String()
	require.Contains(t, out, "| 10.0 (9.0–11.0) |")
	require.Contains(t, out, "9.7 (9.2–10.4) sagas/s against 10.0 (9.0–11.0) (-3%)")
	require.Contains(t, out, "no difference beyond the spread of the runs (the ranges overlap)")
	require.NotContains(t, out, "it helped")

	r.Rows[2].Throughput, r.Rows[2].Runs = 12.0, []float64{12.0, 11.5, 13.0}
	b.Reset()
	require.NoError(t, renderReport(&b, r))
	require.Contains(t, b.String(), "Row 1 with 16 pollers instead of 4: 12.0 (11.5–13.0) sagas/s")
	require.Contains(t, b.String(), "it helped (the ranges do not overlap)")
}

func TestMedianRun(t *testing.T) {
	run := func(tput float64, completed int) RowResult {
		return RowResult{Sagas: 10, Completed: completed, Throughput: tput}
	}
	m := medianRun([]RowResult{run(9, 10), run(12, 10), run(10, 10)})
	require.InDelta(t, 10.0, m.Throughput, 1e-9, "the middle run")
	require.Equal(t, []float64{9, 12, 10}, m.Runs, "every run, in the order they ran")
	require.InDelta(t, 9.0, medianRun([]RowResult{run(12, 10), run(9, 10)}).Throughput, 1e-9, "the lower middle of an even count")
	failed := medianRun([]RowResult{run(9, 10), run(12, 7), run(10, 10)})
	require.Equal(t, 7, failed.Completed, "a run with failures is the one reported")
	require.Len(t, medianRun([]RowResult{run(5, 10)}).Runs, 1)
}

func TestNum(t *testing.T) {
	tests := []struct {
		v    float64
		dec  int
		want string
	}{
		{0, 0, "0"}, {999, 0, "999"}, {1000, 0, "1,000"}, {1234567.891, 1, "1,234,567.9"}, {-1234, 0, "-1,234"}, {0.04, 2, "0.04"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, num(tt.v, tt.dec))
	}
}

func TestEventName(t *testing.T) {
	require.Equal(t, "TimerStarted", eventName(enumspb.EVENT_TYPE_TIMER_STARTED))
	require.Equal(t, "WorkflowTaskStarted", eventName(stringer("EVENT_TYPE_WORKFLOW_TASK_STARTED")))
	require.Equal(t, "transfer", workflowKind("transfer-order-x-1"))
	require.Equal(t, "empty", workflowKind("r3-abc-1"))
}

type stringer string

func (s stringer) String() string { return string(s) }

func TestPassesRotateTheRows(t *testing.T) {
	var order [][]int
	for pass := 1; pass <= 3; pass++ {
		var o []int
		for j := range 4 {
			o = append(o, passOrder(j, pass, 4))
		}
		order = append(order, o)
	}
	require.Equal(t, [][]int{{0, 1, 2, 3}, {1, 2, 3, 0}, {2, 3, 0, 1}}, order)
}
