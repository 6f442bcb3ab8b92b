package main

import (
	"slices"
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
			Tasks:   TaskCounts{Workflows: 150, WorkflowTasks: 850, ActivityTasks: 300},
			Actions: Actions{WorkflowsStarted: 150, ActivityAttempts: 300, TimersStarted: 250}, Broker: broker}
		if broker {
			r.PublishedPerSec, r.PeakRSS = 140, 64<<20
		}
		r.Worker = WorkerSettings{Pollers: max(spec.Pollers, 4), MaxConcurrentWorkflowTasks: 200, MaxConcurrentActivities: 200, FromProcess: broker}
		// Summed over the 50 sampled sagas: each spends 50% of its p50 on
		// its first tasks' queue, 30% on later tasks', 5% on each of task
		// runs, activity queues and runs, and 4% in the server.
		pct := func(n time.Duration) time.Duration { return 50 * n * p50 / 100 }
		r.Times = Path{FirstTaskQueue: pct(50), WorkflowTaskQueue: pct(30), WorkflowTaskRun: pct(5),
			ActivityQueue: pct(5), ActivityRun: pct(5), Server: pct(4)}
		r.SampledLatency = 50 * p50
		r.CPU = CPUShare{DevServer: 1.4, Worker: 0.3, HostBusy: 1.9}
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
			row(RowSpec{Row: 1, SelfHosted: true}, 6.0, 12*time.Second, true),
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
			{Name: "BenchmarkPublish/queue=classic/publishers=64/watermill", Metrics: map[string]float64{"msgs/s": 11000}},
			{Name: "BenchmarkPublish/queue=quorum/publishers=64/watermill", Metrics: map[string]float64{"msgs/s": 10000}},
		},
		WatermillCommand: "(cd internal/bench/watermill && go run . --messages 5000)",
		PublishCommand:   "go test publish",
		Ledger:           []GoBenchmark{{Name: "BenchmarkLedgerCommands/sqlite", Metrics: map[string]float64{"cmds/s": 1207, "p50_ms": 50, "p99_ms": 101}}},
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
		"| 1 | " + rowTitles[rowOrder] + " | pollers 4, eager start off, 1 RabbitMQ node, classic queues | 1,000 | 1,000 | 10.0 | 9,000 | 18,000 | 27,000 | 3.00 | 2,250 | 17.0 | 6.0 | 14.0 | 140 |",
		"| 3 | " + rowTitles[rowEmpty] + " | pollers 4, eager start off | 1,000 | 1,000 | 400.0 | 250 | 500 | 750 | 3.00 | 62 | 17.0 | 6.0 | 14.0 | — |",
		"Row 1 ÷ row 2 (the cost of RabbitMQ and the services): **0.50×**; target at\n  least 0.80×: not met.",
		"Row 1 ÷ row 3 (the order saga against the empty workflow): **0.03×**; target at\n  least 0.20×: not met.",
		"- Row 1 on a self-hosted Temporal (on PostgreSQL; frontend, matching, worker and 2 history hosts as\n  processes of their own, set up as `make temporal-cluster` does) ÷ row 1 on\n  the dev server: **0.60×** (6.0 against 10.0 sagas/s, p50 12,000 ms against 9,000 ms): 102 against 170 workflow\n  tasks a second, the Temporal processes keeping 1.40 cores busy against the dev server's 1.40.",
		"- Tasks per order saga (row 1, its workflow and children): **17.0 workflow tasks and 6.0 activity\n  tasks**, 14.0 billable actions; target at most 9 and 4: not met.",
		"VmHWM at the end of row 1): **64 MiB**",
		"Messages published per order saga by the worker: 14.0.",
		"| 2 | pollers 4, eager start on | 30.0 | 20.0 | +50% |",
		"Row 1 with 16 pollers instead of 4: 10.5 sagas/s against 10.0 (+5%)",
		"Row 1 with a self-hosted Temporal on PostgreSQL (frontend, matching, worker and 2 history hosts) instead of the dev server: 6.0 sagas/s against 10.0 (-40%)",
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
		"| classic | 64 | 22,000 | 2,000 | 25,000 | 11,000 | 11.00× | 0.88× | 2.00× | 1.00× |",
		"| quorum | 64 | 11,000 | 1,000 | 12,500 | 10,000 | 11.00× | 0.88× | 1.10× | 0.50× |",
		"| classic | 1 | 2,400 | 0 | 0 | — | 0.00× | 0.00× | — | 1.00× |",
		"and `(cd internal/bench/watermill && go run . --messages 5000)`, msgs/s",
		"- `watermill`: the peer, Watermill's AMQP publisher",
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
	require.NotContains(t, out, "Row 1 with 4 pollers instead of 4", "a variant is named by what it changes")
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
	r.Rows = []RowResult{r.Rows[0], r.Rows[1], r.Rows[5]} // row 1, encrypted, 16 pollers
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

// TestConclusionsFollowTheFigures: every sentence that draws a conclusion
// says what the figures of the run support, and its opposite when they
// say the opposite.
func TestConclusionsFollowTheFigures(t *testing.T) {
	withRuns := func(r *Report) {
		for i := range r.Rows {
			tp := r.Rows[i].Throughput
			r.Rows[i].Runs = []float64{tp * 0.9, tp, tp * 1.1}
		}
		r.Rows[0].Runs = []float64{8, 10, 12} // row 1 spreads 40% of its median
	}
	tests := []struct {
		name          string
		change        func(r *Report)
		want, notWant []string
	}{
		{"publishing far from the publisher's limit", func(*Report) {},
			[]string{"so publishing is far\n  from its limit here (1% of it)"}, []string{"close to its limit"}},
		{"publishing close to the publisher's limit", func(r *Report) { r.Publish[0].Metrics["msgs/s"] = 150 },
			[]string{"row 1 used 93% of it, so\n  publishing is close to its limit here."}, []string{"far\n  from its limit"}},
		{"runs that spread widely", withRuns,
			[]string{"In this run a row's runs spread by up to 40% of its median (row 1,", "so compare rows of one run with each other"},
			[]string{"Each row ran once", "figures move by tens of percent"}},
		{"runs that do not spread", func(r *Report) {
			for i := range r.Rows {
				r.Rows[i].Runs = []float64{r.Rows[i].Throughput, r.Rows[i].Throughput * 1.02}
			}
		}, []string{"spread by up to 2% of its median", "within the ±10% the page treats as noise"}, []string{"so compare rows of one run"}},
		{"a single run says nothing of the spread", func(*Report) {},
			[]string{"Each row ran once in this run, so the page cannot say how far"}, []string{"spread by up to"}},
		{"concurrency limits above the sagas in flight", func(*Report) {},
			[]string{"allowed at least 200 concurrent workflow\n    tasks and 200 activities, above the 100 sagas in flight, so they never bound here."},
			[]string{"may have\n    bound"}},
		{"concurrency limits below the sagas in flight", func(r *Report) { r.Rows[0].Worker.MaxConcurrentActivities = 50 },
			[]string{"tasks and 50 activities, not above the 100 sagas in flight: they may have\n    bound here"}, []string{"never bound"}},
		{"the in-process worker runs with the worker process's settings", func(*Report) {},
			[]string{"4 pollers, 200 concurrent workflow tasks and 200 concurrent activities, the settings the worker process stated on its `/metrics` in this run"},
			[]string{"differ in these settings"}},
		{"the in-process worker runs with other settings than the worker process", func(r *Report) { r.Rows[0].Worker.Pollers = 8 },
			[]string{"the worker process stated 8 pollers, 200 and 200 on its `/metrics`, so the rows differ in these settings too",
				"Row 1 with 16 pollers instead of 8"},
			[]string{"the settings the worker process stated"}},
		{"sagas that are nearly all queue", func(*Report) {},
			[]string{"so with 100 in flight it spends 4.00× as long, nearly all of it queued."}, []string{"queued tasks are only"}},
		{"sagas that are mostly not queue", func(r *Report) {
			r.Rows[0].Times.FirstTaskQueue, r.Rows[0].Times.ActivityRun = 0, r.Rows[0].Times.ActivityRun+r.Rows[0].Times.FirstTaskQueue
		}, []string{"Row 1: of the 9,000 ms a sampled saga took, 2,700 ms (30%)", "; queued tasks are only 30% of it.",
			"Workflow tasks waiting are 30% of row 1's latency, not most of it."},
			[]string{"So the sagas wait for CPU"}},
		{"a saturated host where one variant that moves work helped", func(*Report) {},
			[]string{"So the sagas wait for CPU", "the largest user (1.40 of 1.90 busy cores)",
				"Yet of the settings that only move work around (row 1 with 16 pollers, row 2 with eager start),\n  row 2 with eager start helped beyond the noise"},
			[]string{"as the variants show", "gained nothing"}},
		{"a saturated host where no variant that moves work helped", func(r *Report) {
			r.Rows = slices.DeleteFunc(r.Rows, func(res RowResult) bool { return res.Spec.Eager })
		},
			[]string{"Settings that only move work around (row 1 with 16 pollers) gained nothing\n  beyond the noise here"}, []string{"Yet of the settings"}},
		{"a saturated host and no variant that moves work", func(r *Report) {
			r.Rows = slices.DeleteFunc(r.Rows, func(res RowResult) bool { return res.Spec.Eager || res.Spec.Pollers > 0 })
		}, []string{"No variant that only moves work around (pollers, eager start) ran"}, []string{"gained nothing", "Yet of the settings"}},
		{"no encrypted or traced row, no sentence about them", func(r *Report) {
			r.Rows = slices.DeleteFunc(r.Rows, func(res RowResult) bool { return res.Spec.Encrypted || res.Spec.Traced })
		}, nil, []string{"with the payload codec on", "And again with tracing on"}},
		{"the Publisher ahead of Watermill's", func(*Report) {},
			[]string{"the Publisher reaches\n2.00× Watermill's publisher, ahead beyond the ±10% noise band"}, []string{"behind beyond", "within the ±10% noise band.\n"}},
		{"the Publisher level with Watermill's", func(r *Report) { r.Publish[7].Metrics["msgs/s"] = 21000 },
			[]string{"1.05× Watermill's publisher, within the ±10% noise band."}, []string{"ahead beyond"}},
		{"the Publisher behind Watermill's", func(r *Report) { r.Publish[7].Metrics["msgs/s"] = 30000 },
			[]string{"0.73× Watermill's publisher, behind beyond the ±10% noise band."}, []string{"ahead beyond"}},
		{"the Publisher's own cost within the noise", func(r *Report) {
			r.Publish = append(r.Publish, GoBenchmark{Name: "BenchmarkPublish/publishers=1/raw-wait-each", Metrics: map[string]float64{"msgs/s": 2300}})
		}, []string{"the Publisher reaches\n1.04× raw amqp091-go: its own work per message"}, []string{"a difference beyond the ±10% noise band"}},
		{"the Publisher's own cost beyond the noise", func(r *Report) {
			r.Publish = append(r.Publish, GoBenchmark{Name: "BenchmarkPublish/publishers=1/raw-wait-each", Metrics: map[string]float64{"msgs/s": 3000}})
		}, []string{"0.80× raw amqp091-go, a difference beyond the ±10% noise band."}, []string{"its own work per message"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleReport()
			tt.change(r)
			requireRendered(t, r, tt.want, tt.notWant)
		})
	}
}

func TestTailCheck(t *testing.T) {
	row := func(spec RowSpec, p50, p99 time.Duration) RowResult {
		return RowResult{Spec: spec, Sagas: 500, Completed: 500, Throughput: 10, Latency: Latencies{P50: p50, P95: p99, P99: p99},
			Worker: WorkerSettings{Pollers: 4, MaxConcurrentWorkflowTasks: 200, MaxConcurrentActivities: 200}}
	}
	tests := []struct {
		name               string
		concurrency, sagas int
		rows               []RowResult
		want, notWant      []string
	}{
		{"every row within 3× its p50 passes", 100, 500,
			[]RowResult{row(RowSpec{Row: 2}, 10*time.Second, 12*time.Second), row(RowSpec{Row: 2, TransferPollRPS: 1000}, 5*time.Second, 15*time.Second)},
			[]string{"| 2 | pollers 4, eager start off | 10,000 | 12,000 | 1.20 | pass |",
				"| 2 | pollers 4, eager start off, server transfer-queue polls 1,000/s | 5,000 | 15,000 | 3.00 | pass |", "Every row passes."},
			[]string{"**fail**", "Failing"}},
		{"a row whose p99 is beyond 3× its p50 fails", 100, 500,
			[]RowResult{row(RowSpec{Row: 2}, 10*time.Second, 12*time.Second), row(RowSpec{Row: 1, TransferPollRPS: 1000}, 5*time.Second, 78*time.Second)},
			[]string{"| 1 | pollers 4, eager start off, server transfer-queue polls 1,000/s, 1 RabbitMQ node, classic queues | 5,000 | 78,000 | 15.60 | **fail** |",
				"Failing: row 1 (pollers 4, eager start off, server transfer-queue polls 1,000/s, 1 RabbitMQ node, classic queues)."},
			[]string{"Every row passes."}},
		{"another number in flight is not judged", 20, 500,
			[]RowResult{row(RowSpec{Row: 2}, 10*time.Second, 78*time.Second)},
			[]string{"| 7.80 | not judged (20 in flight, not 100) |", "This run had 20 sagas in flight, so the check judged no row."},
			[]string{"**fail**", "Every row passes."}},
		{"fewer sagas than the concurrency are not judged", 100, 60,
			[]RowResult{row(RowSpec{Row: 2}, 10*time.Second, 78*time.Second)},
			[]string{"not judged (60 in flight, not 100)"}, []string{"**fail**"}},
		{"variants are not judged", 100, 500,
			[]RowResult{row(RowSpec{Row: 2}, 10*time.Second, 12*time.Second), row(RowSpec{Row: 2, Pollers: 16}, 10*time.Second, 78*time.Second)},
			[]string{"Every row passes."}, []string{"**fail**"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleReport()
			r.Config.Concurrency, r.Config.Sagas, r.Rows = tt.concurrency, tt.sagas, tt.rows
			requireRendered(t, r, tt.want, tt.notWant)
		})
	}
}

// requireRendered renders r and requires every want in the page and no
// notWant.
func requireRendered(t *testing.T, r *Report, want, notWant []string) {
	t.Helper()
	var b strings.Builder
	require.NoError(t, renderReport(&b, r))
	for _, w := range want {
		require.Contains(t, b.String(), w)
	}
	for _, w := range notWant {
		require.NotContains(t, b.String(), w)
	}
}

// A setting that only adds work and still came out faster is not said to
// have helped; a setting that can help is.
func TestVerdictOfASettingThatOnlyAddsWork(t *testing.T) {
	base := RowResult{Spec: RowSpec{Row: 1}, Throughput: 9.4, Runs: []float64{8.5, 9.4, 9.6}}
	faster := func(spec RowSpec) RowResult {
		return RowResult{Spec: spec, Throughput: 11.2, Runs: []float64{10.0, 11.2, 11.4}}
	}
	require.Equal(t, "it helped (the ranges do not overlap)", verdict(faster(RowSpec{Row: 1, Pollers: 16}), base))
	for _, spec := range []RowSpec{{Row: 1, Encrypted: true}, {Row: 1, Traced: true}} {
		got := verdict(faster(spec), base)
		require.True(t, strings.HasPrefix(got, "faster than the row without it (the ranges do not overlap), which a setting that only adds work cannot explain"), got)
	}
	slower := RowResult{Spec: RowSpec{Row: 1, Encrypted: true}, Throughput: 7, Runs: []float64{6.5, 7, 7.2}}
	require.Equal(t, "it hurt (the ranges do not overlap)", verdict(slower, base))
}
