package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sagaflow/sagaflow/amqp"
)

// Targets the report checks the measurements against.
const (
	// targetOrderVsNoop: the order saga at least 0.8× pure orchestration.
	targetOrderVsNoop = 0.8
	// targetOrderVsEmpty: the order saga at least 0.2× the empty workflow.
	targetOrderVsEmpty = 0.2
	// targetOrderWorkflowTasks, targetOrderActivityTasks and the transfer's:
	// tasks per saga, its workflow and children summed.
	targetOrderWorkflowTasks    = 9
	targetOrderActivityTasks    = 4
	targetTransferWorkflowTasks = 3
	targetTransferActivityTasks = 2
	// targetTransferVsNoop: the transfer saga at least 0.7× its pure
	// orchestration.
	targetTransferVsNoop = 0.7
	// targetClusterVsSingle: the order saga on the 3-node cluster with
	// quorum queues at least 0.8× on one node with classic queues.
	targetClusterVsSingle = 0.8
	// targetPublishVsWaitEach and targetPublishVsPipelined: at 64
	// publishers, the Publisher at least 10× one-at-a-time confirms and at
	// least 0.8× raw pipelined confirms.
	targetPublishVsWaitEach  = 10
	targetPublishVsPipelined = 0.8
	// targetLedgerCmds: commands per second on either engine.
	targetLedgerCmds = 1000
	// noiseBand: differences smaller than this fraction are reported as
	// within the noise of a shared host.
	noiseBand = 0.10
)

// tableColumns are the saga table's columns; a test checks the report has
// every one.
var tableColumns = []string{"row", "saga", "settings", "sagas", "completed", "sagas/s", "p50 ms", "p95 ms", "p99 ms", "p99 ÷ p50",
	"p50 alone ms", "workflow tasks/saga", "activity tasks/saga", "billable actions/saga", "msgs published/s"}

// renderReport writes the report as the Markdown of docs/BENCHMARKS.md.
func renderReport(w io.Writer, r *Report) error {
	p := &printer{w: w}
	p.f("# Benchmarks\n\n")
	p.f("Written by `%s` (the program in `internal/bench`) on %s; every figure\n", r.Config.Command, r.Machine.Date.Format("2006-01-02 15:04 UTC"))
	p.f("below was measured by that run, none typed in. Run it again to update this page.\n\n")
	renderReproduce(p, r)
	renderMachine(p, r)
	renderSagas(p, r)
	renderPublisher(p, r)
	renderLedger(p, r)
	renderCodec(p, r)
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format, args...)
}

func renderReproduce(p *printer, r *Report) {
	p.f("## Reproduce\n\n")
	p.f("With RabbitMQ at `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/`,\n")
	p.f("`rabbitmqctl` on `PATH`) and the Temporal CLI in `./bin` (`make temporal`):\n\n")
	p.f("```\n%s\n```\n\n", r.Config.Command)
	p.f("`make bench` runs `go run ./internal/bench`; this run ran each row %d times, %d\n", r.Config.Repeats, r.Config.Sagas)
	p.f("sagas a run at concurrency %d, %d warm-up sagas per run, histories of %d sagas\n", r.Config.Concurrency, r.Config.Warmup, r.Config.HistorySample)
	p.f("per run. A quick smoke run:\n")
	p.f("`go run ./internal/bench --sagas 100 --concurrency 20 --repeats 1 --skip-go-benchmarks --out -`\n")
	p.f("(`--help` lists every flag). Every run of every row gets a Temporal dev server\n")
	p.f("of its own, started for it and stopped after it (`temporal server start-dev`\n")
	p.f("on a free port, in memory, one task queue partition, the sagas' search\n")
	p.f("attributes, eager workflow start allowed), so that no row runs on a database\n")
	p.f("other rows have filled; the self-hosted row's runs each get a self-hosted\n")
	p.f("Temporal of their own (`internal/temporalcluster`: fresh databases on the\n")
	p.f("local PostgreSQL, the server's processes on free ports, `make temporal-server`'s\n")
	p.f("binaries). The run creates a RabbitMQ virtual host of its own,\n")
	p.f("builds and starts `./worker` for each row through it, and removes all of it at\n")
	p.f("the end, also on Ctrl-C.\n\n")
}

func renderMachine(p *printer, r *Report) {
	m := r.Machine
	p.f("## Machine\n\n")
	p.f("| | |\n|---|---|\n")
	p.f("| CPU | %s × %d |\n", m.CPU, m.CPUs)
	p.f("| memory | %s |\n", gib(m.MemoryBytes))
	p.f("| OS | %s, Linux %s |\n", m.OS, m.Kernel)
	p.f("| Go | %s |\n", m.Go)
	p.f("| RabbitMQ | %s |\n", m.RabbitMQ)
	p.f("| Temporal CLI | %s |\n", m.TemporalCLI)
	p.f("| date | %s |\n", m.Date.Format(time.RFC3339))
	p.f("| load average (1, 5, 15 min) | %s at the start, %s at the end |\n", m.LoadBefore, m.LoadAfter)
	p.f("| run time | %s |\n\n", r.Elapsed.Round(time.Second))
	p.f("The host is shared: the dev server, RabbitMQ, the worker, the benchmark\n")
	p.f("itself and other people's processes compete for the same %d cores (see the load\n", m.CPUs)
	if row, spread, ok := widestSpread(r); ok {
		p.f("average). In this run a row's runs spread by up to %.0f%% of its median (row %d,\n", 100*spread, row.Spec.Row)
		p.f("%s)", row.Settings())
		if spread >= noiseBand {
			p.f(", so compare rows of one run with each other rather than with another run's.\n\n")
		} else {
			p.f(", within the ±%.0f%% the page treats as noise.\n\n", 100*noiseBand)
		}
	} else {
		p.f("average). Each row ran once in this run, so the page cannot say how far its\n")
		p.f("figures move between runs; compare rows of one run with each other.\n\n")
	}
}

func renderSagas(p *printer, r *Report) {
	c := r.Config
	p.f("## Sagas\n\n")
	p.f("%s sagas per run of a row, %d in flight at once, each started and awaited on one\n", num(float64(c.Sagas), 0), c.Concurrency)
	p.f("Temporal dev server started fresh for that run of the row (a dev server slows\n")
	p.f("as its in-memory database fills); latency is start → result. Every row runs %d\n", c.Repeats)
	p.f("times, in passes: each pass runs every row once, starting one row later than\n")
	p.f("the pass before, so that a load that drifts touches all rows alike. A row\n")
	p.f("shows its median run, with the lowest and highest throughput of its runs in\n")
	p.f("brackets. The rows:\n\n")
	p.f("1. **%s**: `OrderWorkflow` with its child\n", rowTitles[rowOrder])
	p.f("   `TransferWorkflow` (the order reserves, commits and releases its stock with\n")
	p.f("   activities of its own, the hold's time-to-live a timer), run by the worker built from\n")
	p.f("   `./worker` with every part (workflows, activities, reply consumer, bridge,\n")
	p.f("   ledger and inventory services on SQLite with their outbox relays, orders\n")
	p.f("   projection, notifications). Each step publishes its command with confirms and\n")
	p.f("   completes on the service's reply; the sagas publish their outcome events.\n")
	p.f("   Orders spread over %d customers, %d merchants and %d skus.\n", poolSize, poolSize, poolSize)
	p.f("2. **%s**: the same workflows\n", rowTitles[rowNoop])
	p.f("   registered under their real names, with activities of the real names that\n")
	p.f("   return at once; no broker, no services. The worker runs in the benchmark\n")
	p.f("   process with %s.\n", inProcessSettings(r))
	p.f("3. **%s**, started and awaited the same way: the ceiling.\n", rowTitles[rowEmpty])
	p.f("4. **%s**: `TransferWorkflow` alone (withdraw →\n", rowTitles[rowTransfer])
	p.f("   deposit → `transfer.completed`) on the same worker process, over %d accounts.\n", poolSize)
	p.f("5. **%s**: the same workflow with the no-op\n", rowTitles[rowTransferNoop])
	p.f("   activities of row 2.\n\n")
	p.f("Tasks per saga are counted from the histories of %d sagas per row (their\n", c.HistorySample)
	p.f("workflow and every child): `WorkflowTaskCompleted` events, and activity attempts\n")
	p.f("that ended (`ActivityTaskCompleted`, `Failed`, `TimedOut`). Messages published\n")
	p.f("per second is the worker's `sagaflow_amqp_published_total` (commands, replies,\n")
	p.f("domain and outcome events) over the row.\n\n")

	var defaults []RowResult
	for _, res := range r.Rows {
		if res.Spec.Default() {
			defaults = append(defaults, res)
		}
	}
	sagaTable(p, defaults)

	order, hasOrder := r.Row(rowOrder)
	noop, hasNoop := r.Row(rowNoop)
	empty, hasEmpty := r.Row(rowEmpty)
	if hasOrder && hasNoop {
		x := ratio(order.Throughput, noop.Throughput)
		p.f("- Row 1 ÷ row 2 (the cost of RabbitMQ and the services): **%s×**; target at\n", fx(x))
		p.f("  least %s×: %s.\n", fx(targetOrderVsNoop), metOrNot(x >= targetOrderVsNoop))
	}
	if hasOrder && hasEmpty {
		x := ratio(order.Throughput, empty.Throughput)
		p.f("- Row 1 ÷ row 3 (the order saga against the empty workflow): **%s×**; target at\n", fx(x))
		p.f("  least %s×: %s.\n", fx(targetOrderVsEmpty), metOrNot(x >= targetOrderVsEmpty))
	}
	renderTaskTargets(p, r)
	if cl, ok := r.clusterRow(); ok && hasOrder {
		x := ratio(cl.Throughput, order.Throughput)
		p.f("- Row 1 on the production topology (%s) ÷ row 1 on one node with classic\n", cl.Settings())
		p.f("  queues: **%s×** (%s against %s sagas/s, p50 %s ms against %s ms); target at least %s×: %s.\n",
			fx(x), throughput(cl), throughput(order), ms(cl.Latency.P50), ms(order.Latency.P50), fx(targetClusterVsSingle), metOrNot(x >= targetClusterVsSingle))
	}
	if sh, ok := r.selfHostedRow(); ok && hasOrder {
		p.f("- Row 1 on a self-hosted Temporal (on PostgreSQL; frontend, matching, worker and 2 history hosts as\n")
		p.f("  processes of their own, set up as `make temporal-cluster` does) ÷ row 1 on\n")
		p.f("  the dev server: **%s×** (%s against %s sagas/s, p50 %s ms against %s ms): %s against %s workflow\n",
			fx(ratio(sh.Throughput, order.Throughput)), throughput(sh), throughput(order), ms(sh.Latency.P50), ms(order.Latency.P50),
			num(sh.workflowTasksPerSecond(), 0), num(order.workflowTasksPerSecond(), 0))
		p.f("  tasks a second, the Temporal processes keeping %s cores busy against the dev server's %s. No\n", fx(sh.CPU.DevServer), fx(order.CPU.DevServer))
		p.f("  target: on one host the server's processes, PostgreSQL and the rest share the same cores;\n")
		p.f("  on hosts of its own the server would have the cores the dev server shares here.\n")
	}
	if hasNoop && hasEmpty {
		p.f("- Row 2 ÷ row 3 (the order's workflows and their steps against one empty workflow): %s×.\n",
			fx(ratio(noop.Throughput, empty.Throughput)))
	}
	transfer, hasTransfer := r.Row(rowTransfer)
	transferNoop, hasTransferNoop := r.Row(rowTransferNoop)
	if hasTransfer && hasTransferNoop {
		x := ratio(transfer.Throughput, transferNoop.Throughput)
		p.f("- Row 4 ÷ row 5 (the transfer saga against its pure orchestration): **%s×**; target\n", fx(x))
		p.f("  at least %s×: %s.\n", fx(targetTransferVsNoop), metOrNot(x >= targetTransferVsNoop))
	}
	if hasOrder {
		p.f("- Peak resident memory of the worker process (VmHWM at the end of row 1): **%s MiB**.\n",
			num(float64(order.PeakRSS)/(1<<20), 0))
		if order.Throughput > 0 {
			p.f("- Messages published per order saga by the worker: %s.\n", num(order.PublishedPerSec/order.Throughput, 1))
		}
	}
	p.f("\n")

	renderRecorded(p, r)
	renderTailCheck(p, r)
	renderSettings(p, r)
	renderTail(p, r)
	renderFindings(p, r)
}

// renderTaskTargets checks the tasks per saga of the order and transfer
// rows (their own settings, the first run that sampled histories) against
// the targets; the counts depend on the workflows, not on the machine.
func renderTaskTargets(p *printer, r *Report) {
	check := func(row int, name string, wfTarget, actTarget float64) {
		res, ok := r.Row(row)
		if !ok || res.Sampled == 0 {
			return
		}
		wf, act := res.WorkflowTasksPerSaga(), res.ActivityTasksPerSaga()
		p.f("- Tasks per %s saga (row %d, its workflow and children): **%s workflow tasks and %s activity\n", name, row, num(wf, 1), num(act, 1))
		p.f("  tasks**, %s billable actions; target at most %s and %s: %s.\n",
			num(res.ActionsPerSaga(), 1), num(wfTarget, 0), num(actTarget, 0), metOrNot(wf <= wfTarget && act <= actTarget))
	}
	check(rowOrder, "order", targetOrderWorkflowTasks, targetOrderActivityTasks)
	check(rowTransfer, "transfer", targetTransferWorkflowTasks, targetTransferActivityTasks)
}

// renderTail shows, per row, where a saga's time goes (from the sampled
// histories), where the slowest saga waited longest, and whether any task
// was retried: what makes the latencies what they are.
func renderTail(p *printer, r *Report) {
	p.f("### Where the time goes\n\n")
	p.f("Per saga, averaged over the sampled histories, along the saga's critical\n")
	p.f("path: from its workflow's start to its end, each moment is counted once, in\n")
	p.f("what the saga waited for then; while the order waits for a child, the\n")
	p.f("moment is the child's, never both. So the parts add up to the latency: the\n")
	p.f("first workflow task of a workflow (the saga's or a child's) and later ones\n")
	p.f("waiting for a poller (scheduled → started), workflow tasks running (started →\n")
	p.f("completed), activities waiting for a poller and running (for the rows through\n")
	p.f("the worker that includes the command's trip through RabbitMQ and the service,\n")
	p.f("and the reply's way back), the server (starting children, delivering signals\n")
	p.f("and children's results, timers), and the client (the start call and the\n")
	p.f("result's return, outside the histories). Then the slowest saga of the row\n")
	p.f("with the longest wait between two consecutive events of its histories, and\n")
	p.f("the activity attempts and workflow tasks that failed or timed out in the\n")
	p.f("sample.\n\n")
	p.f("| row | settings | latency ms | first wf task queue ms | wf task queue ms | wf task run ms | activity queue ms | activity run ms | server ms | client ms | slowest ms | its longest wait ms | in | between | activity retries | wf task retries |\n")
	p.f("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|\n")
	for _, res := range r.Rows {
		t := res.Times.Div(res.Sampled)
		lat := meanLatency(res)
		g := res.SlowestGap
		where, between := "—", "—"
		if g.WorkflowID != "" {
			where = "`" + workflowKind(g.WorkflowID) + "`"
			between = fmt.Sprintf("%s → %s", eventName(g.Before), eventName(g.After))
		}
		p.f("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", res.Spec.Row, res.Settings(),
			ms(lat), ms(t.FirstTaskQueue), ms(t.WorkflowTaskQueue), ms(t.WorkflowTaskRun), ms(t.ActivityQueue), ms(t.ActivityRun),
			ms(t.Server), ms(max(0, lat-t.Total())),
			ms(res.Slowest), ms(g.Duration), where, between, res.Tasks.ActivityRetries, res.Tasks.WorkflowTaskRetries)
	}
	p.f("\n")
	p.f("CPU during each row, in cores kept busy on average (from `/proc`): the dev\n")
	p.f("server (for the self-hosted row, every process of that Temporal server), the worker process (row 1), the benchmark process (starting and\n")
	p.f("awaiting sagas; the in-process worker of rows 2 and 3), RabbitMQ, and every\n")
	p.f("other process on the host, out of %d cores:\n\n", r.Machine.CPUs)
	p.f("| row | settings | dev server | worker | benchmark | RabbitMQ | other processes | host busy |\n")
	p.f("|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range r.Rows {
		c := res.CPU
		p.f("| %d | %s | %s | %s | %s | %s | %s | %s |\n", res.Spec.Row, res.Settings(),
			fx(c.DevServer), fx(c.Worker), fx(c.Benchmark), fx(c.RabbitMQ), fx(c.Others), fx(c.HostBusy))
	}
	p.f("\n")
}

// workflowKind names a saga's workflow by its id's prefix (order-,
// reservation-, transfer-), the part that says which workflow it is.
func workflowKind(id string) string {
	for _, prefix := range []string{"order-", "reservation-", "transfer-"} {
		if strings.HasPrefix(id, prefix) {
			return strings.TrimSuffix(prefix, "-")
		}
	}
	return "empty"
}

// eventName turns EVENT_TYPE_WORKFLOW_TASK_STARTED (or the enum's own
// WorkflowTaskStarted) into WorkflowTaskStarted.
func eventName(t fmt.Stringer) string {
	name := t.String()
	if !strings.Contains(name, "_") {
		return name
	}
	var b strings.Builder
	for _, part := range strings.Split(strings.TrimPrefix(name, "EVENT_TYPE_"), "_") {
		if part == "" {
			continue
		}
		b.WriteString(part[:1] + strings.ToLower(part[1:]))
	}
	return b.String()
}

func sagaTable(p *printer, rows []RowResult) {
	p.f("| %s |\n", strings.Join(tableColumns, " | "))
	p.f("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range rows {
		msgs := "—"
		if res.Broker {
			msgs = num(res.PublishedPerSec, 0)
		}
		tasks := func(v float64) string {
			if res.Sampled == 0 {
				return "—"
			}
			return num(v, 1)
		}
		alone := "—"
		if res.Alone > 0 {
			alone = ms(res.Alone)
		}
		p.f("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			res.Spec.Row, rowTitles[res.Spec.Row], res.Settings(), num(float64(res.Sagas), 0), num(float64(res.Completed), 0),
			throughput(res), ms(res.Latency.P50), ms(res.Latency.P95), ms(res.Latency.P99), fx(res.TailRatio()), alone,
			tasks(res.WorkflowTasksPerSaga()), tasks(res.ActivityTasksPerSaga()), tasks(res.ActionsPerSaga()), msgs)
	}
	p.f("\n")
	for _, res := range rows {
		if res.FirstError != "" {
			p.f("Row %d (%s): %d of %d sagas did not complete; first failure: `%s`\n\n",
				res.Spec.Row, res.Settings(), res.Sagas-res.Completed, res.Sagas, res.FirstError)
		}
	}
}

// selfHostedRow returns the result of row 1 on the self-hosted Temporal.
func (r *Report) selfHostedRow() (RowResult, bool) {
	for _, res := range r.Rows {
		if res.Spec.SelfHosted {
			return res, true
		}
	}
	return RowResult{}, false
}

// workflowTasksPerSecond is the row's throughput in workflow tasks.
func (r RowResult) workflowTasksPerSecond() float64 {
	return r.WorkflowTasksPerSaga() * r.Throughput
}

// clusterRow returns the result of row 1 on the cluster.
func (r *Report) clusterRow() (RowResult, bool) {
	for _, res := range r.Rows {
		if res.Spec.Cluster {
			return res, true
		}
	}
	return RowResult{}, false
}

// variantOf returns the default row a variant is compared with.
func (r *Report) variantOf(v RowResult) (RowResult, bool) {
	if v.Spec.Default() {
		return RowResult{}, false
	}
	return r.Row(v.Spec.Row)
}

func renderSettings(p *printer, r *Report) {
	var variants []RowResult
	for _, res := range r.Rows {
		if !res.Spec.Default() {
			variants = append(variants, res)
		}
	}
	p.f("### Settings\n\n")
	if len(variants) == 0 {
		p.f("No variants ran (`--variants=false`).\n\n")
		return
	}
	if r.hasRow(func(s RowSpec) bool { return s.Encrypted }) {
		p.f("Row 1 runs a second time beside itself with the payload codec on:\n")
		p.f("the worker and the starting client encrypt every payload with AES-256-GCM under\n")
		p.f("a fresh key (`SAGAFLOW_CODEC_KEYS`), as a production deployment would.\n")
	}
	if r.hasRow(func(s RowSpec) bool { return s.Traced }) {
		p.f("And again with tracing on: the worker and the starting client export every\n")
		p.f("span (sampler `parentbased_always_on`) over OTLP/gRPC to a receiver in the\n")
		p.f("benchmark process that counts them, as they would to a collector.\n")
	}
	p.f("\n")
	if _, ok := r.clusterRow(); ok {
		p.f("Then, unless `--skip-cluster`, it runs a third time on the production topology:\n")
		p.f("a local %d-node RabbitMQ cluster (`internal/rmqcluster`, nodes of the installed\n", clusterNodes)
		p.f("`rabbitmq-server` on this host) with quorum queues replicated on every node,\n")
		p.f("%d `worker --run orchestration` processes and one `worker --run services`\n", clusterOrchestrationWorkers)
		p.f("(ledger and inventory on SQLite, as in row 1), each given the node list in\n")
		p.f("another order so that their connections spread over the nodes. Row 1 itself\n")
		p.f("runs on the one broker at `--amqp-url` with classic queues. The nodes share the\n")
		p.f("host's cores with everything else, so the row measures what replication and\n")
		p.f("the split into processes cost on one machine, not what a cluster of machines\n")
		p.f("would reach.\n\n")
	}
	if r.Config.Variants {
		p.f("Each variant runs beside its row with one setting changed: more task\n")
		p.f("queue pollers (`--pollers` of the worker; `MaxConcurrentWorkflowTaskPollers`\n")
		p.f("and `MaxConcurrentActivityTaskPollers`), or eager workflow start\n")
		p.f("(`StartWorkflowOptions.EnableEagerStart`: the server hands the first workflow\n")
		p.f("task back in the start response to a worker in the starting process, so it\n")
		p.f("applies to rows 2 and 3, whose worker runs in the benchmark process). Last,\n")
		p.f("every row runs again, each run on a dev server of its own started with\n")
		p.f("`--dynamic-config-value history.transferProcessorMaxPollRPS=%d` (default 20):\n", r.Config.TransferPollRPS)
		p.f("the history service reads its transfer queue at most that often, and nearly\n")
		p.f("every step of a saga (dispatching a workflow or activity task, starting a\n")
		p.f("child, delivering a signal) is a transfer task. At 20 reads a second a step can\n")
		p.f("wait up to 50 ms for the next read once the limiter's burst is spent.\n\n")
	}
	sagaTable(p, variants)
	p.f("| row | settings | sagas/s | default's sagas/s | change | p50 ms | default's p50 ms |\n")
	p.f("|---:|---|---:|---:|---:|---:|---:|\n")
	for _, v := range variants {
		d, ok := r.variantOf(v)
		if !ok {
			continue
		}
		p.f("| %d | %s | %s | %s | %s | %s | %s |\n", v.Spec.Row, v.Settings(), throughput(v), throughput(d),
			change(v.Throughput, d.Throughput), ms(v.Latency.P50), ms(d.Latency.P50))
	}
	p.f("\n")
}

// codecTarget is the throughput the encrypted row 1 should keep, as a
// fraction of row 1's.
const codecTarget = 0.95

// traceTarget is the throughput the traced row 1 should keep, as a
// fraction of row 1's.
const traceTarget = 0.9

func renderFindings(p *printer, r *Report) {
	p.f("### What the numbers say\n\n")
	c := r.Config
	cores := float64(r.Machine.CPUs)
	for _, row := range []int{rowOrder, rowNoop, rowEmpty, rowTransfer, rowTransferNoop} {
		res, ok := r.Row(row)
		if !ok || res.Sampled == 0 {
			continue
		}
		lat, t := meanLatency(res), res.Times.Div(res.Sampled)
		queue := t.FirstTaskQueue + t.WorkflowTaskQueue
		share := ratio(queue.Seconds(), lat.Seconds())
		p.f("- Row %d: of the %s ms a sampled saga took, %s ms (%.0f%%) were its workflow tasks\n", row,
			ms(lat), ms(queue), 100*share)
		p.f("  waiting to be picked up (%s ms of it first tasks of a workflow), %s ms workflow\n", ms(t.FirstTaskQueue), ms(t.WorkflowTaskRun))
		p.f("  code running, %s ms activities waiting and %s ms activities running.", ms(t.ActivityQueue), ms(t.ActivityRun))
		if res.Alone > 0 {
			p.f(" Alone (the warm-up runs one saga at a time) a saga takes %s ms,\n", ms(res.Alone))
			p.f("  so with %d in flight it spends %s× as long", c.Concurrency, fx(ratio(res.Latency.P50.Seconds(), res.Alone.Seconds())))
			switch {
			case share >= 0.8:
				p.f(", nearly all of it queued.")
			case share >= 0.5:
				p.f(", most of it queued.")
			default:
				p.f("; queued tasks are only %.0f%% of it.", 100*share)
			}
		}
		p.f(" The host's %d cores were %.0f%% busy (dev server %s cores, other processes %s).\n",
			r.Machine.CPUs, 100*ratio(res.CPU.HostBusy, cores), fx(res.CPU.DevServer), fx(res.CPU.Others))
	}
	if res, ok := r.Row(rowOrder); ok && res.Sampled > 0 && cores > 0 {
		t := res.Times.Div(res.Sampled)
		queued := ratio((t.FirstTaskQueue + t.WorkflowTaskQueue).Seconds(), meanLatency(res).Seconds())
		switch {
		case queued > 0.5 && res.CPU.HostBusy >= 0.85*cores:
			p.f("- So the sagas wait for CPU: workflow tasks queue while every core is busy")
			if res.CPU.DevServer >= res.CPU.HostBusy/2 {
				p.f(", and\n  the dev server (history, matching and its in-memory SQLite in one process) is\n")
				p.f("  the largest user (%s of %s busy cores).", fx(res.CPU.DevServer), fx(res.CPU.HostBusy))
			} else {
				p.f(".")
			}
			ran, helped := workMovingVariants(r)
			switch {
			case len(ran) == 0:
				p.f(" No variant that only moves work around (pollers, eager start) ran to\n  test whether they gain anything on a saturated host.\n")
			case len(helped) == 0:
				p.f(" Settings that only move work around (%s) gained nothing\n  beyond the noise here, as a saturated host predicts.\n", strings.Join(ran, ", "))
			default:
				p.f(" Yet of the settings that only move work around (%s),\n  %s helped beyond the noise: see the variants.\n", strings.Join(ran, ", "), strings.Join(helped, ", "))
			}
		case queued > 0.5:
			p.f("- Workflow tasks queue although cores are free (%.0f%% busy): the rate at which\n", 100*ratio(res.CPU.HostBusy, cores))
			p.f("  tasks are dispatched and polled (pollers, the server's transfer-queue reads)\n")
			p.f("  limits the sagas; see the variants.\n")
		default:
			p.f("- Workflow tasks waiting are %.0f%% of row 1's latency, not most of it.\n", 100*queued)
		}
	}
	order, hasOrder := r.Row(rowOrder)
	noop, hasNoop := r.Row(rowNoop)
	if hasOrder && hasNoop && order.Sampled > 0 && noop.Sampled > 0 {
		p.f("- Tasks per saga: row 1 %s workflow tasks and %s activity tasks over %s workflows, row 2 %s and %s\n",
			num(order.WorkflowTasksPerSaga(), 1), num(order.ActivityTasksPerSaga(), 1), num(order.WorkflowsPerSaga(), 1),
			num(noop.WorkflowTasksPerSaga(), 1), num(noop.ActivityTasksPerSaga(), 1))
		p.f("  over %s. ", num(noop.WorkflowsPerSaga(), 1))
		if math.Abs(order.WorkflowTasksPerSaga()-noop.WorkflowTasksPerSaga()) <= 1 && order.ActivityTasksPerSaga() == noop.ActivityTasksPerSaga() {
			p.f("The server does the same work per saga in both rows (an activity completed by\n")
			p.f("  the reply consumer with `CompleteActivityByID` costs one call like an ordinary\n")
			p.f("  completion), so what row 1 adds is the worker process with the services\n")
			p.f("  (%s cores) and RabbitMQ (%s cores) competing with the dev server for the\n", fx(order.CPU.Worker), fx(order.CPU.RabbitMQ))
			p.f("  cores, and the commands' round trips (activities ran %s ms per saga against %s).\n",
				ms(order.Times.Div(order.Sampled).ActivityRun), ms(noop.Times.Div(noop.Sampled).ActivityRun))
		} else {
			p.f("The rows differ in tasks per saga: in row 1 replies arrive at other moments\n")
			p.f("  than no-op results do, so workflow tasks batch events differently, and any\n")
			p.f("  activity retried or timed out adds attempts.\n")
		}
	}
	if hasOrder && order.Throughput > 0 {
		p.f("- Row 1's worker published %s messages/s, %s per saga; the publisher\n", num(order.PublishedPerSec, 0), num(order.PublishedPerSec/order.Throughput, 1))
		if pub, ok := publisherAt(r.Publish, 64, "publisher"); ok {
			p.f("  benchmark below reaches %s msgs/s at 64 publishers", num(pub, 0))
			switch use := ratio(order.PublishedPerSec, pub); {
			case use < 0.25:
				p.f(", so publishing is far\n  from its limit here (%.0f%% of it).\n", 100*use)
			case use < 0.75:
				p.f(": row 1 used %.0f%% of it.\n", 100*use)
			default:
				p.f(": row 1 used %.0f%% of it, so\n  publishing is close to its limit here.\n", 100*use)
			}
		} else {
			p.f("  benchmark (skipped in this run) measures its limit.\n")
		}
	}
	for _, v := range r.Rows {
		d, ok := r.variantOf(v)
		if !ok || d.Throughput == 0 {
			continue
		}
		what := fmt.Sprintf("%d pollers instead of %d", v.Worker.Pollers, d.Worker.Pollers)
		switch {
		case v.Spec.Eager:
			what = "eager workflow start"
		case v.Spec.TransferPollRPS > 0:
			what = fmt.Sprintf("the server's transfer queue read up to %s times a second instead of 20", num(float64(v.Spec.TransferPollRPS), 0))
		case v.Spec.Encrypted:
			what = "payloads encrypted (AES-256-GCM codec in the worker and the client)"
		case v.Spec.Traced:
			what = "tracing on (OpenTelemetry in the worker and the client, every span sampled, exported over OTLP/gRPC)"
		case v.Spec.Cluster:
			what = fmt.Sprintf("a %d-node RabbitMQ cluster and quorum queues, %d orchestration workers and a services worker instead of one node, classic queues and one worker",
				clusterNodes, clusterOrchestrationWorkers)
		case v.Spec.SelfHosted:
			what = "a self-hosted Temporal on PostgreSQL (frontend, matching, worker and 2 history hosts) instead of the dev server"
		}
		p.f("- Row %d with %s: %s sagas/s against %s (%s), p50 %s ms against %s ms: %s.", v.Spec.Row, what,
			throughput(v), throughput(d), change(v.Throughput, d.Throughput), ms(v.Latency.P50), ms(d.Latency.P50),
			verdict(v, d))
		if v.Spec.Encrypted {
			x := ratio(v.Throughput, d.Throughput)
			p.f(" Target ≥ %s× of the unencrypted row: %s× (medians), %s.", fx(codecTarget), fx(x), metOrNot(x >= codecTarget))
			if enc, ok := codecMicros(r.Codec, "plain/encode"); ok {
				dec, _ := codecMicros(r.Codec, "plain/decode")
				p.f(" The codec itself takes %s µs to encrypt and %s µs to decrypt a payload (see Payload codec below).", num(enc, 1), num(dec, 1))
			}
		}
		if v.Spec.Traced {
			x := ratio(v.Throughput, d.Throughput)
			p.f(" Target ≥ %s× of the untraced row: %s× (medians), %s.", fx(traceTarget), fx(x), metOrNot(x >= traceTarget))
			if n := v.Sagas + r.Config.Warmup; v.Spans > 0 && n > 0 {
				p.f(" Its receiver got %s spans, %s per saga.", num(float64(v.Spans), 0), num(float64(v.Spans)/float64(n), 1))
			} else {
				p.f(" Its receiver got no span: the row did not trace.")
			}
		}
		if v.Alone > 0 && d.Alone > 0 && ratio(d.Alone.Seconds(), v.Alone.Seconds()) >= 2 {
			p.f(" Alone, a saga takes %s ms instead of %s ms: this setting\n", ms(v.Alone), ms(d.Alone))
			p.f("  is what sets the latency of a saga that has the host to itself.")
		}
		p.f("\n")
	}
	p.f("- Not varied in this run, and why:\n")
	if wf, act, ok := lowestConcurrency(r); ok {
		p.f("  - Concurrency limits: the rows' workers allowed at least %d concurrent workflow\n", wf)
		if wf >= c.Concurrency && act >= c.Concurrency {
			p.f("    tasks and %d activities, above the %d sagas in flight, so they never bound here.\n", act, c.Concurrency)
		} else {
			p.f("    tasks and %d activities, not above the %d sagas in flight: they may have\n", act, c.Concurrency)
			p.f("    bound here, and a variant with higher limits would tell.\n")
		}
	}
	p.f("  - Batching of relay publishes: already on. Each service's outbox relay sends\n")
	p.f("    up to 200 rows per batch with pipelined confirms and is woken at commit, so\n")
	p.f("    one confirm round trip serves every reply written meanwhile.\n")
	p.f("  - Local activities: already on where they keep the sagas' behaviour. The\n")
	p.f("    outcome publishes, the transfer's withdraw and deposit and the order's\n")
	p.f("    commit run as local activities (version 2 of\n")
	p.f("    `workflows.LocalOutcomePublishChange` and of `workflows.OwnHoldChange`): a\n")
	p.f("    command step waits for its reply in the worker, on the worker's own reply\n")
	p.f("    queue, inside the workflow task that decided it. The order's reserve stays\n")
	p.f("    a regular activity, so that a cancel during it reaches the order before\n")
	p.f("    its payment starts; the compensations stay regular too, and so does the\n")
	p.f("    standalone reservation saga.\n")
	p.f("  - Eager activity execution: off on the dev server by default\n")
	p.f("    (`system.enableActivityEagerExecution`); it would save a matching round trip\n")
	p.f("    per activity when the worker has a free slot.\n\n")
}

func renderPublisher(p *printer, r *Report) {
	p.f("## Publisher\n\n")
	p.f("Confirmed messages per second: 512-byte persistent payloads, mandatory flag,\n")
	p.f("published to a durable queue through a topic exchange, with 1, 8 and 64\n")
	p.f("goroutines publishing at once, into a classic queue and into a quorum queue\n")
	p.f("(the workers' default; on one node here, so its replication costs only its\n")
	p.f("own log's fsyncs). Three variants run side by side in one run:\n\n")
	p.f("- `publisher`: `amqp.Publisher.Publish` (one shared confirm channel,\n")
	p.f("  pipelined confirms matched by delivery tag, basic.return matched to its\n")
	p.f("  publish).\n")
	p.f("- `raw-wait-each`: raw amqp091-go, one message in flight at a time (publish,\n")
	p.f("  wait for its confirm, publish the next).\n")
	p.f("- `raw-pipelined`: raw amqp091-go on one shared confirm channel, each\n")
	p.f("  goroutine waiting for its own `DeferredConfirmation`.\n")
	p.f("- `watermill`: the peer, Watermill's AMQP publisher\n")
	p.f("  (`github.com/ThreeDotsLabs/watermill-amqp/v3` v3.0.2) with `ConfirmDelivery`,\n")
	p.f("  `Mandatory` and a channel pool of one channel per goroutine (each waits for\n")
	p.f("  its confirm before its next publish), persistent delivery, the same exchange\n")
	p.f("  type, queues and payloads. It is a module of its own (`%s`, so\n", watermillDir)
	p.f("  Watermill stays out of the project's `go.mod`), run as a subprocess right\n")
	p.f("  after `BenchmarkPublish`, against the same broker.\n\n")
	if len(r.Publish) == 0 {
		p.f("Skipped in this run (`--skip-go-benchmarks`).\n\n")
		return
	}
	p.f("Measured with `%s`", r.PublishCommand)
	if r.WatermillCommand != "" {
		p.f(" and `%s`", r.WatermillCommand)
	}
	p.f(", msgs/s:\n\n")
	p.f("| queue | publishers | publisher | raw-wait-each | raw-pipelined | watermill | publisher ÷ wait-each | publisher ÷ pipelined | publisher ÷ watermill | publisher ÷ classic |\n")
	p.f("|---|-----------:|----------:|--------------:|--------------:|----------:|----------------------:|----------------------:|----------------------:|----------------------:|\n")
	var counts []int
	for _, b := range r.Publish {
		if n, ok := publishers(b); ok && !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
	}
	slices.Sort(counts)
	for _, queue := range []string{amqp.QueueClassic, amqp.QueueQuorum} {
		for _, n := range counts {
			pub, ok := publisherOn(r.Publish, queue, n, "publisher")
			if !ok {
				continue
			}
			wait, _ := publisherOn(r.Publish, queue, n, "raw-wait-each")
			pipe, _ := publisherOn(r.Publish, queue, n, "raw-pipelined")
			classic, _ := publisherOn(r.Publish, amqp.QueueClassic, n, "publisher")
			wm, wmOK := publisherOn(r.Publish, queue, n, "watermill")
			wmCell, wmRatio := "—", "—"
			if wmOK {
				wmCell, wmRatio = num(wm, 0), fx(ratio(pub, wm))+"×"
			}
			p.f("| %s | %d | %s | %s | %s | %s | %s× | %s× | %s | %s× |\n", queue, n, num(pub, 0), num(wait, 0), num(pipe, 0), wmCell,
				fx(ratio(pub, wait)), fx(ratio(pub, pipe)), wmRatio, fx(ratio(pub, classic)))
		}
	}
	p.f("\n")
	pub, ok1 := publisherAt(r.Publish, 64, "publisher")
	wait, ok2 := publisherAt(r.Publish, 64, "raw-wait-each")
	pipe, ok3 := publisherAt(r.Publish, 64, "raw-pipelined")
	if ok1 && ok2 && ok3 {
		p.f("Targets at 64 publishers: at least %d× wait-each (%s×: %s) and at least %s×\n",
			targetPublishVsWaitEach, fx(ratio(pub, wait)), metOrNot(ratio(pub, wait) >= targetPublishVsWaitEach), fx(targetPublishVsPipelined))
		p.f("raw pipelined (%s×: %s). The wait-each figure depends on the broker's disk\n",
			fx(ratio(pub, pipe)), metOrNot(ratio(pub, pipe) >= targetPublishVsPipelined))
		p.f("syncs, shared with every other process on the host, so it and the ratio against\n")
		p.f("it swing most between runs.\n\n")
	}
	if wm, ok := publisherAt(r.Publish, 64, "watermill"); ok && ok1 && wm > 0 {
		x := ratio(pub, wm)
		p.f("Against the peer at 64 publishers on a classic queue: the Publisher reaches\n%s× Watermill's publisher", fx(x))
		switch {
		case x > 1+noiseBand:
			p.f(", ahead beyond the ±%.0f%% noise band: one channel with pipelined\n", 100*noiseBand)
			p.f("confirms instead of a channel per publisher, each waiting for its confirm.\n\n")
		case x < 1-noiseBand:
			p.f(", behind beyond the ±%.0f%% noise band.\n\n", 100*noiseBand)
		default:
			p.f(", within the ±%.0f%% noise band.\n\n", 100*noiseBand)
		}
	}
	// The Publisher's own cost (a mutex, a map insert and a pooled waiter
	// per message) shows against raw amqp091-go with one publisher, where
	// both wait for each confirm.
	if one, ok1 := publisherAt(r.Publish, 1, "publisher"); ok1 {
		if raw, ok2 := publisherAt(r.Publish, 1, "raw-wait-each"); ok2 && raw > 0 {
			x := ratio(one, raw)
			p.f("With one publisher, where both wait for each confirm, the Publisher reaches\n")
			if math.Abs(x-1) <= noiseBand {
				p.f("%s× raw amqp091-go: its own work per message (a mutex, a map insert, a pooled\n", fx(x))
				p.f("waiter) is within the noise of the broker's round trip and fsync.\n\n")
			} else {
				p.f("%s× raw amqp091-go, a difference beyond the ±%.0f%% noise band.\n\n", fx(x), 100*noiseBand)
			}
		}
	}
}

// subField returns the value of a key=value part of a sub-benchmark's
// name ("queue=quorum/publishers=64/publisher").
func subField(b GoBenchmark, key string) (string, bool) {
	for _, part := range strings.Split(b.Sub(), "/") {
		if v, ok := strings.CutPrefix(part, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// publishers reads the publisher count of a BenchmarkPublish sub-benchmark.
func publishers(b GoBenchmark) (int, bool) {
	v, ok := subField(b, "publishers")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// benchQueue reads the queue type of a BenchmarkPublish sub-benchmark;
// results without one were measured on a classic queue.
func benchQueue(b GoBenchmark) string {
	if v, ok := subField(b, "queue"); ok {
		return v
	}
	return amqp.QueueClassic
}

// publisherAt returns msgs/s of one variant at n publishers on a classic
// queue.
func publisherAt(bs []GoBenchmark, n int, variant string) (float64, bool) {
	return publisherOn(bs, amqp.QueueClassic, n, variant)
}

// publisherOn returns msgs/s of one variant at n publishers on a queue
// type.
func publisherOn(bs []GoBenchmark, queue string, n int, variant string) (float64, bool) {
	for _, b := range bs {
		if got, ok := publishers(b); ok && got == n && benchQueue(b) == queue && strings.HasSuffix(b.Sub(), "/"+variant) {
			v, ok := b.Metrics["msgs/s"]
			return v, ok
		}
	}
	return 0, false
}

func renderLedger(p *printer, r *Report) {
	p.f("## Ledger\n\n")
	p.f("Commands handled per second by the ledger service through RabbitMQ\n")
	p.f("request-reply: 64 goroutines each send a `ledger.deposit` or\n")
	p.f("`ledger.withdraw` (alternating, 10 EUR, on 20 accounts) and wait for its\n")
	p.f("reply, so every command makes the whole trip — requester publish with\n")
	p.f("confirm, consumer, one database transaction (inbox claim, load from snapshot\n")
	p.f("plus tail, optimistic append, reply and event into the outbox), outbox relay\n")
	p.f("with pipelined confirms, reply consumed. Latency is command sent → reply\n")
	p.f("received. The service runs with its defaults (16 concurrent handlers,\n")
	p.f("prefetch 64, relay batches of up to 200 rows, snapshot every 100 events).\n\n")
	if len(r.Ledger) == 0 {
		p.f("Skipped in this run (`--skip-go-benchmarks`).\n\n")
		return
	}
	p.f("Measured with `%s` (PostgreSQL at `POSTGRES_TEST_DSN`\n", r.LedgerCommand)
	p.f("or the default of `internal/testenv`; an engine whose database is missing is left out):\n\n")
	p.f("| engine | cmds/s | p50 ms | p99 ms | target %s cmds/s |\n", num(targetLedgerCmds, 0))
	p.f("|--------|-------:|-------:|-------:|---|\n")
	for _, b := range r.Ledger {
		cmds := b.Metrics["cmds/s"]
		p.f("| %s | %s | %s | %s | %s |\n", b.Sub(), num(cmds, 0), num(b.Metrics["p50_ms"], 0), num(b.Metrics["p99_ms"], 0),
			metOrNot(cmds >= targetLedgerCmds))
	}
	p.f("\n")
	p.f("Where the time goes: publishing is already batched (the relay drains up to\n")
	p.f("200 rows per batch with pipelined confirms, woken at commit), and the outbox\n")
	p.f("rows of a command are written in one multi-row INSERT. A PostgreSQL command\n")
	p.f("costs about seven round trips and one WAL flush per commit (concurrent commits\n")
	p.f("share flushes); 20 hot accounts turn extra handler concurrency into\n")
	p.f("optimistic-concurrency retries. Further headroom, not taken:\n")
	p.f("`synchronous_commit = off` on PostgreSQL (trades the last commits on a crash\n")
	p.f("for throughput), and group commit of several commands in one transaction.\n")
}

func renderCodec(p *printer, r *Report) {
	p.f("\n## Payload codec\n\n")
	p.f("The cost of the payload codec (`codec/`) on one payload the size of an order\n")
	p.f("saga's input, encrypted with AES-256-GCM, with and without zlib compression\n")
	p.f("before it (`SAGAFLOW_CODEC_COMPRESS`). Every payload a worker or client sends is\n")
	p.f("encoded once and every payload it reads decoded once.\n\n")
	if len(r.Codec) == 0 {
		p.f("Skipped in this run (`--skip-go-benchmarks`).\n")
		return
	}
	p.f("Measured with `%s`:\n\n", r.CodecCommand)
	p.f("| payload | encode µs | decode µs |\n|---|---:|---:|\n")
	for _, variant := range []string{"plain", "compressed"} {
		enc, eok := codecMicros(r.Codec, variant+"/encode")
		dec, dok := codecMicros(r.Codec, variant+"/decode")
		if !eok || !dok {
			continue
		}
		p.f("| %s | %s | %s |\n", variant, num(enc, 1), num(dec, 1))
	}
}

// codecMicros returns a codec benchmark's time per payload in µs.
func codecMicros(bs []GoBenchmark, sub string) (float64, bool) {
	for _, b := range bs {
		if b.Sub() == sub {
			v, ok := b.Metrics["ns/op"]
			return v / 1000, ok
		}
	}
	return 0, false
}

// num formats v with decimals digits and thousands separators.
func num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 && strings.Trim(s, "0.") != "" {
		b.WriteByte('-')
	}
	for i, ch := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// ms formats a duration in whole milliseconds.
func ms(d time.Duration) string { return num(float64(d.Microseconds())/1000, 0) }

// fx formats a ratio with two decimals.
func fx(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// change formats v against base as a signed percentage.
func change(v, base float64) string {
	if base == 0 {
		return "—"
	}
	return fmt.Sprintf("%+.0f%%", (v/base-1)*100)
}

// throughput is a row's sagas/s: the median run, and the range of its runs
// when it ran more than once.
func throughput(r RowResult) string {
	lo, hi, ok := r.spread()
	if !ok {
		return num(r.Throughput, 1)
	}
	return fmt.Sprintf("%s (%s–%s)", num(r.Throughput, 1), num(lo, 1), num(hi, 1))
}

// spread is the lowest and highest throughput of a row's runs; ok is false
// for a row that ran once.
func (r RowResult) spread() (lo, hi float64, ok bool) {
	if len(r.Runs) < 2 {
		return 0, 0, false
	}
	return slices.Min(r.Runs), slices.Max(r.Runs), true
}

// verdict says whether a variant helped, hurt or made no difference beyond
// the noise of a shared host. Rows that ran several times differ only when
// their ranges do not overlap; a single run each is judged against
// noiseBand.
func verdict(v, base RowResult) string {
	out := rawVerdict(v, base)
	if strings.HasPrefix(out, "it helped") && (v.Spec.Encrypted || v.Spec.Traced) {
		// Encryption and tracing only add work: a faster row says the runs
		// differed in something else, not that the setting sped them up.
		return "faster than the row without it" + strings.TrimPrefix(out, "it helped") +
			", which a setting that only adds work cannot explain: something else that differed between the runs (their order, the host's other load) outweighed its cost"
	}
	return out
}

func rawVerdict(v, base RowResult) string {
	vlo, vhi, vok := v.spread()
	blo, bhi, bok := base.spread()
	if vok && bok {
		switch {
		case vlo > bhi:
			return "it helped (the ranges do not overlap)"
		case vhi < blo:
			return "it hurt (the ranges do not overlap)"
		default:
			return "no difference beyond the spread of the runs (the ranges overlap)"
		}
	}
	switch d := ratio(v.Throughput, base.Throughput) - 1; {
	case d > noiseBand:
		return "it helped"
	case d < -noiseBand:
		return "it hurt"
	default:
		return fmt.Sprintf("no difference beyond the noise (±%.0f%%)", noiseBand*100)
	}
}

// meanLatency is the mean latency of a row's sampled sagas as the
// benchmark measured them.
func meanLatency(r RowResult) time.Duration {
	if r.Sampled == 0 {
		return 0
	}
	return r.SampledLatency / time.Duration(r.Sampled)
}

// workMovingVariants lists the variants of the report that only move work
// around (more pollers, eager start), and those of them that helped beyond
// the noise (verdict).
func workMovingVariants(r *Report) (ran, helped []string) {
	for _, v := range r.Rows {
		if v.Spec.Pollers == 0 && !v.Spec.Eager {
			continue
		}
		d, ok := r.variantOf(v)
		if !ok {
			continue
		}
		name := fmt.Sprintf("row %d with %d pollers", v.Spec.Row, v.Worker.Pollers)
		if v.Spec.Eager {
			name = fmt.Sprintf("row %d with eager start", v.Spec.Row)
		}
		ran = append(ran, name)
		if strings.HasPrefix(verdict(v, d), "it helped") {
			helped = append(helped, name)
		}
	}
	return ran, helped
}

// inProcessSettings describes the in-process worker's settings (rows 2, 3
// and 5) and how they compare with those the worker process reported.
func inProcessSettings(r *Report) string {
	var in, proc *WorkerSettings
	for i := range r.Rows {
		res := &r.Rows[i]
		if !res.Spec.Default() || res.Worker.Pollers == 0 {
			continue
		}
		if res.Worker.FromProcess && proc == nil {
			proc = &res.Worker
		} else if !res.Worker.FromProcess && in == nil {
			in = &res.Worker
		}
	}
	if in == nil {
		return "its own settings (no such row ran)"
	}
	s := fmt.Sprintf("%d pollers, %d concurrent workflow tasks and %d concurrent activities", in.Pollers, in.MaxConcurrentWorkflowTasks, in.MaxConcurrentActivities)
	switch {
	case proc == nil:
		return s + " (no row through the worker process ran to compare them with its settings)"
	case proc.Pollers == in.Pollers && proc.MaxConcurrentWorkflowTasks == in.MaxConcurrentWorkflowTasks && proc.MaxConcurrentActivities == in.MaxConcurrentActivities:
		return s + ", the settings the worker process stated on its `/metrics` in this run"
	default:
		return s + fmt.Sprintf("; the worker process stated %d pollers, %d and %d on its `/metrics`, so the rows differ in these settings too",
			proc.Pollers, proc.MaxConcurrentWorkflowTasks, proc.MaxConcurrentActivities)
	}
}

// lowestConcurrency is the lowest concurrent workflow tasks and activities
// any row's worker ran with; ok is false when no row reported them.
func lowestConcurrency(r *Report) (wf, act int, ok bool) {
	for _, res := range r.Rows {
		if res.Worker.MaxConcurrentWorkflowTasks == 0 {
			continue
		}
		if !ok || res.Worker.MaxConcurrentWorkflowTasks < wf {
			wf = res.Worker.MaxConcurrentWorkflowTasks
		}
		if !ok || res.Worker.MaxConcurrentActivities < act {
			act = res.Worker.MaxConcurrentActivities
		}
		ok = true
	}
	return wf, act, ok
}

// hasRow reports whether a row with a spec that ok accepts ran.
func (r *Report) hasRow(ok func(RowSpec) bool) bool {
	return slices.ContainsFunc(r.Rows, func(res RowResult) bool { return ok(res.Spec) })
}

// widestSpread is the row whose runs spread most, (highest − lowest) ÷
// median throughput; ok is false when no row ran more than once.
func widestSpread(r *Report) (RowResult, float64, bool) {
	var widest RowResult
	best, found := 0.0, false
	for _, res := range r.Rows {
		lo, hi, ok := res.spread()
		if !ok || res.Throughput == 0 {
			continue
		}
		if s := (hi - lo) / res.Throughput; !found || s > best {
			widest, best, found = res, s, true
		}
	}
	return widest, best, found
}

// Tail check: with this many sagas in flight, a row's p99 latency must
// stay within tailCheckRatio × its p50. A saga that waits far longer than
// the others (a task starving in a queue while others are served) fails
// it even when the median looks fine.
const (
	tailCheckConcurrency = 100
	tailCheckRatio       = 3.0
)

// TailRatio is the row's p99 latency ÷ its p50; 0 without latencies.
func (r RowResult) TailRatio() float64 {
	return ratio(r.Latency.P99.Seconds(), r.Latency.P50.Seconds())
}

// tailChecked reports whether the tail check judges a row: the default
// settings on either server setting.
func tailChecked(s RowSpec) bool {
	s.TransferPollRPS = 0
	return s.Default()
}

// tailVerdict is a row's tail check: pass, fail, or not judged when the
// run had another number of sagas in flight.
func tailVerdict(res RowResult, concurrency int) string {
	switch {
	case concurrency != tailCheckConcurrency:
		return fmt.Sprintf("not judged (%d in flight, not %d)", concurrency, tailCheckConcurrency)
	case res.Latency.P50 == 0:
		return "not judged (no latency)"
	case res.TailRatio() <= tailCheckRatio:
		return "pass"
	default:
		return "**fail**"
	}
}

func renderTailCheck(p *printer, r *Report) {
	var rows []RowResult
	for _, res := range r.Rows {
		if tailChecked(res.Spec) {
			rows = append(rows, res)
		}
	}
	if len(rows) == 0 {
		return
	}
	p.f("### Tail check\n\n")
	p.f("At %d sagas in flight a row's p99 latency must stay within %s× its p50, on\n", tailCheckConcurrency, num(tailCheckRatio, 0))
	p.f("the dev server's defaults and on the setting `make demo` runs with\n")
	p.f("(`history.transferProcessorMaxPollRPS=%d`): a saga that waits far longer than the\n", r.Config.TransferPollRPS)
	p.f("others, such as a task starving in a queue while later ones are served, fails\n")
	p.f("it even when the median looks fine.\n\n")
	p.f("| row | settings | p50 ms | p99 ms | p99 ÷ p50 | p99 ≤ %s× p50 |\n", num(tailCheckRatio, 0))
	p.f("|---:|---|---:|---:|---:|---|\n")
	// Fewer sagas than the concurrency never have that many in flight.
	inFlight := min(r.Config.Concurrency, r.Config.Sagas)
	var failed []string
	for _, res := range rows {
		v := tailVerdict(res, inFlight)
		if v == "**fail**" {
			failed = append(failed, fmt.Sprintf("row %d (%s)", res.Spec.Row, res.Settings()))
		}
		p.f("| %d | %s | %s | %s | %s | %s |\n", res.Spec.Row, res.Settings(), ms(res.Latency.P50), ms(res.Latency.P99), fx(res.TailRatio()), v)
	}
	p.f("\n")
	switch {
	case inFlight != tailCheckConcurrency:
		p.f("This run had %d sagas in flight, so the check judged no row.\n\n", inFlight)
	case len(failed) == 0:
		p.f("Every row passes.\n\n")
	default:
		p.f("Failing: %s.\n\n", strings.Join(failed, "; "))
	}
}
