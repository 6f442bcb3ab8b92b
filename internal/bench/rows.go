package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/workflows"
)

// The in-process worker's settings (rows 2, 3 and 5), chosen equal to the
// worker process's defaults (worker/config.go) so that the rows differ
// only in what they measure. Every row reports the settings it ran with,
// read from the worker process's /metrics or from these, and the page
// says when the two differ.
const (
	inProcessPollers       = 4
	inProcessMaxConcurrent = 200
)

// WorkerSettings are the Temporal worker settings a row ran with.
type WorkerSettings struct {
	// Pollers are the workflow and activity task pollers (each).
	Pollers int
	// MaxConcurrentWorkflowTasks and MaxConcurrentActivities are the tasks
	// it runs at once.
	MaxConcurrentWorkflowTasks, MaxConcurrentActivities int
	// FromProcess is true when they were read from the worker process's
	// /metrics, false for the in-process worker's options.
	FromProcess bool
}

// Pools the order sagas of row 1 spread over. Each order touches one
// customer, one merchant and one sku; 20 of each keeps the ledger's and
// the inventory's optimistic-concurrency retries as rare as in the ledger
// benchmark (20 accounts) instead of serialising every saga on one row.
const (
	poolSize   = 20
	orderPrice = 100
	currency   = "EUR"
)

// The benchmark's rows.
const (
	rowOrder        = 1 // the order saga through the worker process, every part
	rowNoop         = 2 // the same workflows with no-op activities
	rowEmpty        = 3 // an empty workflow
	rowTransfer     = 4 // the transfer saga through the worker process
	rowTransferNoop = 5 // the transfer saga with no-op activities
	maxRow          = rowTransferNoop
)

// throughWorker reports whether a row runs on the worker process (and so
// needs the broker and the services).
func throughWorker(row int) bool { return row == rowOrder || row == rowTransfer }

// rowTitles names the rows in the report.
var rowTitles = map[int]string{
	rowOrder:        "order saga (worker process: RabbitMQ, ledger + inventory on SQLite, events)",
	rowNoop:         "pure orchestration (same workflows, no-op activities)",
	rowEmpty:        "empty workflow",
	rowTransfer:     "transfer saga (worker process: RabbitMQ, ledger on SQLite, events)",
	rowTransferNoop: "transfer saga, pure orchestration (no-op activities)",
}

// RowSpec is one measured row: which saga, with which settings.
type RowSpec struct {
	// Row is rowOrder, rowNoop or rowEmpty.
	Row int
	// Pollers are the workflow and activity task pollers; 0 is the worker's
	// default (4).
	Pollers int
	// Eager requests eager workflow start; it needs the worker in the
	// starting process, so rows 2 and 3 only.
	Eager bool
	// TransferPollRPS is the dev server's history.transferProcessorMaxPollRPS;
	// 0 is the server's default (20). Rows with another value run on a dev
	// server of their own.
	TransferPollRPS int
	// SelfHosted runs the row on a self-hosted Temporal server
	// (internal/temporalcluster) instead of a dev server.
	SelfHosted bool
	// Encrypted runs the worker and the starting client with the payload
	// codec on (a fresh AES-256 key), row 1 only.
	Encrypted bool
	// Traced runs the worker and the starting client with OpenTelemetry
	// tracing on, every span sampled and exported over OTLP/gRPC to a
	// receiver in the benchmark process, row 1 only.
	Traced bool
	// Cluster runs the row on the production topology: a 3-node RabbitMQ
	// cluster with quorum queues, clusterOrchestrationWorkers `worker
	// --run orchestration` processes and one `worker --run services`
	// (on SQLite), row 1 only. Without it a row through the worker runs on
	// the one broker at --amqp-url with classic queues.
	Cluster bool
}

// clusterOrchestrationWorkers is how many orchestration workers the
// cluster row runs.
const clusterOrchestrationWorkers = 2

// clusterNodes is the size of the cluster row's RabbitMQ cluster.
const clusterNodes = 3

// Default reports whether the spec runs with the project's default settings.
func (s RowSpec) Default() bool {
	return s.Pollers == 0 && !s.Eager && s.TransferPollRPS == 0 && !s.Encrypted && !s.Traced && !s.Cluster && !s.SelfHosted
}

// Settings describes the spec's settings, as the log shows a row before
// it ran; the report shows RowResult.Settings.
func (s RowSpec) Settings() string {
	if s.Pollers > 0 {
		return fmt.Sprintf("pollers %d, %s", s.Pollers, s.otherSettings())
	}
	return s.otherSettings()
}

// otherSettings describes the settings besides the pollers.
func (s RowSpec) otherSettings() string {
	var parts []string
	if s.Eager {
		parts = append(parts, "eager start on")
	} else {
		parts = append(parts, "eager start off")
	}
	if s.TransferPollRPS > 0 {
		parts = append(parts, fmt.Sprintf("server transfer-queue polls %s/s", num(float64(s.TransferPollRPS), 0)))
	}
	if s.SelfHosted {
		parts = append(parts, selfHostedSettings)
	}
	if s.Encrypted {
		parts = append(parts, "payloads encrypted")
	}
	if s.Traced {
		parts = append(parts, "traced")
	}
	if s.Cluster {
		parts = append(parts, fmt.Sprintf("%d-node RabbitMQ cluster, quorum queues, %d orchestration workers + 1 services worker", clusterNodes, clusterOrchestrationWorkers))
	} else if throughWorker(s.Row) {
		parts = append(parts, "1 RabbitMQ node, classic queues")
	}
	return strings.Join(parts, ", ")
}

// inProcessPollers is the in-process worker's pollers for the spec.
func (s RowSpec) inProcessPollers() int {
	if s.Pollers == 0 {
		return inProcessPollers
	}
	return s.Pollers
}

// Settings describes the settings the row ran with: the pollers its
// worker reported, then the spec's.
func (r RowResult) Settings() string {
	pollers := "pollers unknown"
	if r.Worker.Pollers > 0 {
		pollers = fmt.Sprintf("pollers %d", r.Worker.Pollers)
	}
	return pollers + ", " + r.Spec.otherSettings()
}

// planRows lists the rows to run: each selected row with the defaults,
// followed by its variants, so a row and its variants run close in time
// on a machine whose load drifts; then every row again on a dev server
// with a higher transfer-queue poll rate (unless cfg.TransferPollRPS is
// negative), which the tail check needs whether variants are on or not.
func planRows(cfg Config) []RowSpec {
	var specs []RowSpec
	for _, r := range cfg.Rows {
		specs = append(specs, RowSpec{Row: r})
		if r == rowOrder {
			// Always beside the row it is compared with: encryption is a
			// production setting, not a tuning experiment.
			specs = append(specs, RowSpec{Row: r, Encrypted: true})
			// So is tracing, and the production topology.
			specs = append(specs, RowSpec{Row: r, Traced: true})
			if !cfg.SkipCluster {
				specs = append(specs, RowSpec{Row: r, Cluster: true})
			}
			// And the Temporal server as users self-host it.
			if !cfg.SkipSelfHosted {
				specs = append(specs, RowSpec{Row: r, SelfHosted: true})
			}
		}
		if !cfg.Variants {
			continue
		}
		if r == rowOrder || r == rowNoop {
			specs = append(specs, RowSpec{Row: r, Pollers: cfg.MorePollers})
		}
		if r == rowTransfer || r == rowTransferNoop {
			continue // the transfer rows are measured with the defaults only
		}
		if r == rowNoop || r == rowEmpty {
			specs = append(specs, RowSpec{Row: r, Eager: true})
		}
	}
	// Variants or not: the tail check judges every row on both server
	// settings, the default and the one `make demo` runs.
	if cfg.TransferPollRPS > 0 {
		for _, r := range cfg.Rows {
			specs = append(specs, RowSpec{Row: r, TransferPollRPS: cfg.TransferPollRPS})
		}
	}
	return specs
}

// RowResult is what one row measured.
type RowResult struct {
	Spec RowSpec
	// Sagas is how many were started; Completed how many ended as expected.
	Sagas, Completed int
	// FirstError is the first failure, empty when every saga completed.
	FirstError string
	Elapsed    time.Duration
	// Throughput is sagas completed per second.
	Throughput float64
	// Spans is how many spans the traced row exported, the worker's and
	// the starting client's, warm-up included.
	Spans int64
	// Runs are the throughputs of every run of the row, this one (the
	// median) among them, in the order they ran.
	Runs    []float64
	Latency Latencies
	// Alone is the p50 latency of the warm-up sagas, run one at a time; 0
	// without warm-up.
	Alone time.Duration
	// Tasks, Times and SampledLatency are summed over Sampled sagas: Times
	// is their critical paths, whose Total is their spans in the
	// histories; SampledLatency their latencies as the benchmark measured
	// them, which also hold the start call and the result's return.
	Tasks          TaskCounts
	Actions        Actions
	Times          Path
	SampledLatency time.Duration
	Sampled        int
	// Slowest is the longest saga's latency, and SlowestGap the longest wait
	// in its histories.
	Slowest    time.Duration
	SlowestGap Gap
	// Server is the address of the dev server the row ran on, started for
	// this run of the row alone.
	Server string
	// Worker is the Temporal worker settings the row ran with.
	Worker WorkerSettings
	// CPU is the cores each party kept busy during the measured load.
	CPU CPUShare
	// Broker is set when the row ran through RabbitMQ; then PublishedPerSec
	// and PeakRSS are measured.
	Broker          bool
	PublishedPerSec float64
	// PeakRSS is the worker process's VmHWM at the end of the row, in bytes.
	PeakRSS int64
}

// WorkflowTasksPerSaga is the mean over the sampled sagas.
func (r RowResult) WorkflowTasksPerSaga() float64 {
	return ratio(float64(r.Tasks.WorkflowTasks), float64(r.Sampled))
}

// ActivityTasksPerSaga is the mean over the sampled sagas.
func (r RowResult) ActivityTasksPerSaga() float64 {
	return ratio(float64(r.Tasks.ActivityTasks), float64(r.Sampled))
}

// ActionsPerSaga is the mean number of billable actions over the sampled
// sagas.
func (r RowResult) ActionsPerSaga() float64 {
	return ratio(float64(r.Actions.Total()), float64(r.Sampled))
}

// WorkflowsPerSaga is the mean number of workflow executions per saga.
func (r RowResult) WorkflowsPerSaga() float64 {
	return ratio(float64(r.Tasks.Workflows), float64(r.Sampled))
}

// sagaFunc runs saga i to its end and returns its workflow id; an error
// means it did not end as expected.
type sagaFunc func(ctx context.Context, i int) (workflowID string, err error)

// loadResult is a finished load.
type loadResult struct {
	latencies []time.Duration
	// lat is every saga's latency by index, completed or not.
	lat []time.Duration
	// slowest is the index of the completed saga that took longest, -1
	// when none completed.
	slowest    int
	slowestLat time.Duration
	ids        []string
	// ok tells, by index, the sagas that completed: only their histories
	// are whole (a saga whose start failed has none).
	ok         []bool
	completed  int
	firstError error
	elapsed    time.Duration
}

// runLoad runs n sagas, concurrency at a time.
func runLoad(ctx context.Context, n, concurrency int, saga sagaFunc) loadResult {
	res := loadResult{ids: make([]string, n), slowest: -1}
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(concurrency, n) {
		wg.Go(func() {
			for i := range jobs {
				t0 := time.Now()
				id, err := saga(ctx, i)
				lat[i], res.ids[i] = time.Since(t0), id
				if err == nil {
					ok[i] = true
					continue
				}
				mu.Lock()
				if res.firstError == nil {
					res.firstError = err
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.lat, res.ok = lat, ok
	for i := range n {
		if ok[i] {
			res.completed++
			res.latencies = append(res.latencies, lat[i])
			if lat[i] > res.slowestLat {
				res.slowest, res.slowestLat = i, lat[i]
			}
		}
	}
	if res.firstError == nil && res.completed < n {
		res.firstError = ctx.Err()
	}
	return res
}

// orderPools are the accounts and skus of one row's orders.
type orderPools struct {
	customers, merchants, skus []string
}

func newOrderPools(prefix string) orderPools {
	var p orderPools
	for i := range poolSize {
		p.customers = append(p.customers, fmt.Sprintf("%s-customer-%d", prefix, i))
		p.merchants = append(p.merchants, fmt.Sprintf("%s-merchant-%d", prefix, i))
		p.skus = append(p.skus, fmt.Sprintf("%s-sku-%d", prefix, i))
	}
	return p
}

// order is the i-th order of a row: one line of one unit.
func (p orderPools) order(prefix string, i int) events.OrderPlaced {
	return events.OrderPlaced{
		OrderID:    fmt.Sprintf("%s-%d", prefix, i),
		CustomerID: p.customers[i%len(p.customers)],
		// Offset so a customer pays several merchants.
		MerchantID: p.merchants[(i/len(p.customers))%len(p.merchants)],
		Lines:      []events.OrderLine{{SKU: p.skus[i%len(p.skus)], Quantity: 1, UnitPrice: orderPrice}},
		Currency:   currency,
		Total:      orderPrice,
	}
}

// provision opens the accounts and stocks the skus for n orders through
// the services' command queues.
func (p orderPools) provision(ctx context.Context, r *amqp.Requester, n int) error {
	budget := int64(n) * orderPrice // every customer could pay for every order
	for _, id := range p.customers {
		if err := sendCommand(ctx, r, contract.LedgerQueue, events.CmdLedgerOpen,
			events.LedgerOpen{AccountID: id, Currency: currency, Owner: "bench", InitialBalance: budget}); err != nil {
			return err
		}
	}
	for _, id := range p.merchants {
		if err := sendCommand(ctx, r, contract.LedgerQueue, events.CmdLedgerOpen,
			events.LedgerOpen{AccountID: id, Currency: currency, Owner: "bench"}); err != nil {
			return err
		}
	}
	for _, sku := range p.skus {
		if err := sendCommand(ctx, r, contract.InventoryQueue, events.CmdInventoryRestock,
			events.InventoryRestock{SKU: sku, Quantity: int64(n)}); err != nil {
			return err
		}
	}
	return nil
}

// orderSaga runs order sagas on queue and expects each confirmed.
func orderSaga(c client.Client, queue, prefix string, eager bool, pools orderPools) sagaFunc {
	return func(ctx context.Context, i int) (string, error) {
		o := pools.order(prefix, i)
		opts := contract.OrderStartOptions(o, queue)
		opts.EnableEagerStart = eager
		run, err := c.ExecuteWorkflow(ctx, opts, contract.OrderWorkflowType, o)
		if err != nil {
			return opts.ID, fmt.Errorf("start %s: %w", opts.ID, err)
		}
		var res contract.OrderResult
		if err := run.Get(ctx, &res); err != nil {
			return opts.ID, fmt.Errorf("%s: %w", opts.ID, err)
		}
		if res.Outcome != contract.OrderConfirmed {
			return opts.ID, fmt.Errorf("%s: %s %s", opts.ID, res.Outcome, res.Reason)
		}
		return opts.ID, nil
	}
}

// transferAccounts are the accounts of one row's transfers: each transfer
// moves one unit from one account to the next, over poolSize accounts.
type transferAccounts []string

func newTransferAccounts(prefix string) transferAccounts {
	var a transferAccounts
	for i := range poolSize {
		a = append(a, fmt.Sprintf("%s-account-%d", prefix, i))
	}
	return a
}

// transfer is the i-th transfer of a row.
func (a transferAccounts) transfer(prefix string, i int) contract.TransferInput {
	return contract.TransferInput{
		TransferID:      fmt.Sprintf("%s-%d", prefix, i),
		SourceAccountID: a[i%len(a)],
		TargetAccountID: a[(i+1)%len(a)],
		Amount:          orderPrice,
		Currency:        currency,
	}
}

// provision opens the accounts with enough money for n transfers each.
func (a transferAccounts) provision(ctx context.Context, r *amqp.Requester, n int) error {
	for _, id := range a {
		if err := sendCommand(ctx, r, contract.LedgerQueue, events.CmdLedgerOpen,
			events.LedgerOpen{AccountID: id, Currency: currency, Owner: "bench", InitialBalance: int64(n) * orderPrice}); err != nil {
			return err
		}
	}
	return nil
}

// transferSaga runs transfer sagas on queue and expects each completed.
func transferSaga(c client.Client, queue, prefix string, accounts transferAccounts) sagaFunc {
	return func(ctx context.Context, i int) (string, error) {
		in := accounts.transfer(prefix, i)
		opts := contract.TransferStartOptions(in.TransferID, queue)
		run, err := c.ExecuteWorkflow(ctx, opts, contract.TransferWorkflowType, in)
		if err != nil {
			return opts.ID, fmt.Errorf("start %s: %w", opts.ID, err)
		}
		var res contract.TransferResult
		if err := run.Get(ctx, &res); err != nil {
			return opts.ID, fmt.Errorf("%s: %w", opts.ID, err)
		}
		if res.Outcome != contract.TransferCompleted {
			return opts.ID, fmt.Errorf("%s: %s %s", opts.ID, res.Outcome, res.Reason)
		}
		return opts.ID, nil
	}
}

// emptySaga runs EmptyWorkflow on queue.
func emptySaga(c client.Client, queue, prefix string, eager bool) sagaFunc {
	return func(ctx context.Context, i int) (string, error) {
		id := fmt.Sprintf("%s-%d", prefix, i)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue, EnableEagerStart: eager}, EmptyWorkflow)
		if err != nil {
			return id, fmt.Errorf("start %s: %w", id, err)
		}
		if err := run.Get(ctx, nil); err != nil {
			return id, fmt.Errorf("%s: %w", id, err)
		}
		return id, nil
	}
}

// rowEnv is what the rows share: the dev server's client and address, the
// vhost and the worker binary (row 1 only), a directory for files.
type rowEnv struct {
	client       client.Client
	temporalAddr string
	// serverPIDs are the Temporal server's processes: the dev server, or
	// every process of a self-hosted one.
	serverPIDs []int
	vhost      *vhost
	requester  *amqp.Requester
	// cluster is the cluster row's RabbitMQ cluster; nil unless planned.
	cluster   *benchCluster
	workerBin string
	dir       string
	log       io.Writer
}

// runRow runs one row: its worker, a warm-up, the measured load, then the
// history sample.
func runRow(ctx context.Context, env rowEnv, cfg Config, spec RowSpec) (res RowResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.RowTimeout)
	defer cancel()
	res = RowResult{Spec: spec, Sagas: cfg.Sagas}
	tag := fmt.Sprintf("r%d-%s", spec.Row, uuid.NewString()[:8])
	queue := "bench-" + tag

	var saga, warm sagaFunc
	// procs are the row's worker processes; none for the in-process rows.
	var procs []*workerProcess
	switch spec.Row {
	case rowOrder, rowTransfer:
		if spec.Eager {
			return res, fmt.Errorf("row %d cannot start eagerly: its worker runs in another process", spec.Row)
		}
		if (spec.Encrypted || spec.Traced) && spec.Row != rowOrder {
			return res, fmt.Errorf("row %d is not measured encrypted or traced", spec.Row)
		}
		if spec.Cluster && (spec.Row != rowOrder || env.cluster == nil) {
			return res, fmt.Errorf("row %d cannot run on the cluster", spec.Row)
		}
		settings := workerSettings{Pollers: spec.Pollers, QueueType: amqp.QueueClassic}
		c := env.client
		if spec.Encrypted {
			var err error
			if settings.CodecKeys, c, err = encryptedClient(env.client, filepath.Join(env.dir, tag+".keys")); err != nil {
				return res, err
			}
			defer c.Close()
		}
		if spec.Traced {
			spans, tc, shutdown, err := tracedClient(ctx, env.client)
			if err != nil {
				return res, err
			}
			c = tc
			settings.OTLPEndpoint = spans.Endpoint
			defer func() {
				c.Close()
				shutdown()
				// The worker flushed its spans when it stopped (earlier
				// deferred calls run later), the client's just now.
				res.Spans = spans.Spans()
				spans.stop()
			}()
		}
		requester := env.requester
		var err error
		if spec.Cluster {
			procs, err = env.cluster.startWorkers(ctx, env, filepath.Join(env.dir, tag), queue, settings)
			requester = env.cluster.requester
		} else {
			var proc *workerProcess
			proc, err = startWorker(ctx, env.workerBin, filepath.Join(env.dir, tag), env.temporalAddr, env.vhost.URL, queue, settings)
			procs = []*workerProcess{proc}
		}
		if err != nil {
			return res, err
		}
		defer func() {
			for _, proc := range procs {
				if err := proc.stop(); err != nil {
					fmt.Fprintf(env.log, "bench: %v\n", err)
				}
			}
		}()
		if res.Worker, err = settingsOf(ctx, procs); err != nil {
			return res, err
		}
		if spec.Row == rowTransfer {
			accounts := newTransferAccounts(tag)
			if err := accounts.provision(ctx, requester, cfg.Sagas+cfg.Warmup); err != nil {
				return res, fmt.Errorf("provision accounts: %w", err)
			}
			saga = transferSaga(c, queue, tag, accounts)
			warm = transferSaga(c, queue, tag+"-warmup", accounts)
		} else {
			pools := newOrderPools(tag)
			if err := pools.provision(ctx, requester, cfg.Sagas+cfg.Warmup); err != nil {
				return res, fmt.Errorf("provision accounts and stock: %w", err)
			}
			saga = orderSaga(c, queue, tag, false, pools)
			warm = orderSaga(c, queue, tag+"-warmup", false, pools)
		}
		res.Broker = true
	case rowNoop, rowEmpty, rowTransferNoop:
		opts := worker.Options{
			MaxConcurrentActivityExecutionSize:     inProcessMaxConcurrent,
			MaxConcurrentWorkflowTaskExecutionSize: inProcessMaxConcurrent,
			// As the worker process polls (worker/temporal.go): autoscaled
			// workflow task pollers, up to this many on the task queue and
			// as many on the sticky queue, so that no new workflow's first
			// task starves behind the sticky queue's backlog.
			WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
				InitialNumberOfPollers: spec.inProcessPollers(), MinimumNumberOfPollers: 1, MaximumNumberOfPollers: spec.inProcessPollers(),
			}),
			MaxConcurrentActivityTaskPollers: spec.inProcessPollers(),
		}
		res.Worker = WorkerSettings{Pollers: opts.MaxConcurrentActivityTaskPollers,
			MaxConcurrentWorkflowTasks: opts.MaxConcurrentWorkflowTaskExecutionSize, MaxConcurrentActivities: opts.MaxConcurrentActivityExecutionSize}
		w := worker.New(env.client, queue, opts)
		switch spec.Row {
		case rowNoop:
			workflows.Register(w)
			w.RegisterActivity(&noopActivities{})
			pools := newOrderPools(tag)
			saga = orderSaga(env.client, queue, tag, spec.Eager, pools)
			warm = orderSaga(env.client, queue, tag+"-warmup", spec.Eager, pools)
		case rowTransferNoop:
			workflows.Register(w)
			w.RegisterActivity(&noopActivities{})
			accounts := newTransferAccounts(tag)
			saga = transferSaga(env.client, queue, tag, accounts)
			warm = transferSaga(env.client, queue, tag+"-warmup", accounts)
		default:
			w.RegisterWorkflow(EmptyWorkflow)
			saga = emptySaga(env.client, queue, tag, spec.Eager)
			warm = emptySaga(env.client, queue, tag+"-warmup", spec.Eager)
		}
		if err := w.Start(); err != nil {
			return res, fmt.Errorf("start in-process worker: %w", err)
		}
		defer w.Stop()
	default:
		return res, fmt.Errorf("unknown row %d", spec.Row)
	}

	if cfg.Warmup > 0 {
		// One at a time: the warm-up also measures a saga's latency when
		// nothing else competes, against which the loaded latency is read.
		wr := runLoad(ctx, cfg.Warmup, 1, warm)
		if wr.firstError != nil {
			return res, fmt.Errorf("warm-up: %w", wr.firstError)
		}
		res.Alone = latencies(wr.latencies).P50
	}
	var workerPIDs []int
	for _, proc := range procs {
		workerPIDs = append(workerPIDs, proc.cmd.Process.Pid)
	}
	cpuBefore := takeCPU(env.serverPIDs, workerPIDs...)
	before, err := publishedBy(ctx, procs)
	if err != nil {
		return res, err
	}
	load := runLoad(ctx, cfg.Sagas, cfg.Concurrency, saga)
	res.CPU = share(cpuBefore, takeCPU(env.serverPIDs, workerPIDs...))
	res.Elapsed, res.Completed = load.elapsed, load.completed
	res.Throughput = ratio(float64(load.completed), load.elapsed.Seconds())
	res.Latency = latencies(load.latencies)
	if load.firstError != nil {
		res.FirstError = load.firstError.Error()
	}
	if len(procs) > 0 {
		after, err := publishedBy(ctx, procs)
		if err != nil {
			return res, err
		}
		res.PublishedPerSec = ratio(after-before, load.elapsed.Seconds())
		for _, proc := range procs {
			rss, err := proc.peakRSS()
			if err != nil {
				return res, fmt.Errorf("worker peak memory: %w", err)
			}
			res.PeakRSS += rss
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	read := cachedHistory(temporalHistory(env.client))
	for _, i := range sampleIndexes(cfg.Sagas, cfg.HistorySample) {
		if !load.ok[i] {
			continue
		}
		c, err := sagaTasks(ctx, read, load.ids[i], "")
		if err != nil {
			return res, err
		}
		path, err := sagaPath(ctx, read, load.ids[i], "")
		if err != nil {
			return res, err
		}
		a, err := sagaActions(ctx, read, load.ids[i], "")
		if err != nil {
			return res, err
		}
		res.Tasks, res.Times, res.Actions = res.Tasks.Add(c), res.Times.Add(path), res.Actions.Add(a)
		res.SampledLatency += load.lat[i]
		res.Sampled++
	}
	if load.slowest >= 0 {
		res.Slowest = load.slowestLat
		if res.SlowestGap, err = sagaGap(ctx, read, load.ids[load.slowest], ""); err != nil {
			return res, err
		}
	}
	return res, nil
}

// encryptedClient writes a key file with a fresh AES-256 key at path and
// returns it with a client on c's connection that encrypts with it, as the
// worker given the file does.
func encryptedClient(c client.Client, path string) (string, client.Client, error) {
	secret := make([]byte, codec.KeySize)
	if _, err := rand.Read(secret); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(path, []byte("bench:"+base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return "", nil, err
	}
	cdc, err := codec.Load(codec.Config{KeysFile: path})
	if err != nil {
		return "", nil, err
	}
	ec, err := client.NewClientFromExisting(c, client.Options{
		Namespace: "default", DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
	})
	if err != nil {
		return "", nil, fmt.Errorf("client with the codec: %w", err)
	}
	return path, ec, nil
}
