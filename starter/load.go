package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/sagastats"
)

// Saga types load can run.
const (
	loadTransfer = "transfer"
	loadOrder    = "order"
)

// loadPlan is a validated load: what to run and how.
type loadPlan struct {
	Sagas       int
	Concurrency int
	Mix         []string
	FailureRate float64
	Currency    string
	// Amount is the amount of each transfer and the unit price of each
	// order's single line, in minor units.
	Amount int64
	Prefix string
	// Deadline is each saga's deadline, counted from its start; zero: the
	// saga type's default.
	Deadline time.Duration
}

// parseLoadPlan validates the load flags.
func parseLoadPlan(sagas, concurrency int, mix string, failureRate float64, currency string) (loadPlan, error) {
	p := loadPlan{Sagas: sagas, Concurrency: concurrency, FailureRate: failureRate, Amount: 100}
	if sagas <= 0 {
		return p, usagef("--sagas %d: must be positive", sagas)
	}
	if concurrency <= 0 {
		return p, usagef("--concurrency %d: must be positive", concurrency)
	}
	if failureRate < 0 || failureRate > 1 || failureRate != failureRate {
		return p, usagef("--failure-rate %v: must be between 0 and 1", failureRate)
	}
	for _, m := range strings.Split(mix, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case loadTransfer, loadOrder:
			if !slices.Contains(p.Mix, m) {
				p.Mix = append(p.Mix, m)
			}
		case "":
		default:
			return p, usagef("--mix: unknown saga type %q (want transfer, order)", m)
		}
	}
	if len(p.Mix) == 0 {
		return p, usagef("--mix: name at least one of transfer, order")
	}
	cur, err := parseCurrency(currency)
	if err != nil {
		return p, err
	}
	p.Currency = cur
	p.Prefix = "load-" + newID()
	return p, nil
}

// loadOutcome is how one saga of a load ended; the statistics are the
// ones `make bench` reports (internal/sagastats).
type loadOutcome = sagastats.Outcome

const (
	loadCompleted   = sagastats.Completed
	loadCompensated = sagastats.Compensated
	loadFailed      = sagastats.Failed
	loadUnfinished  = sagastats.Unfinished
	loadNotStarted  = sagastats.NotStarted
)

// loadSample is one saga of a load.
type loadSample = sagastats.Sample

// loadStats is the report of a load.
type loadStats struct {
	Sagas int `json:"sagas"`
	// Started counts the sagas the load started; the others are
	// NotStarted, the load having been stopped first.
	Started    int                      `json:"started"`
	NotStarted int                      `json:"not_started"`
	Elapsed    time.Duration            `json:"elapsed_ns"`
	Throughput float64                  `json:"throughput_per_s"`
	ByType     map[string]loadTypeStats `json:"by_type"`
	// StoppedBy says what ended the load before every saga ran: "" when
	// none did, "--duration 1m0s", "interrupt".
	StoppedBy string `json:"stopped_by,omitempty"`
}

type loadTypeStats struct {
	sagastats.Counts
	P50ms      float64 `json:"p50_ms"`
	P95ms      float64 `json:"p95_ms"`
	P99ms      float64 `json:"p99_ms"`
	Throughput float64 `json:"throughput_per_s"`
}

func summarize(samples []loadSample, elapsed time.Duration) loadStats {
	st := loadStats{Sagas: len(samples), Elapsed: elapsed, ByType: map[string]loadTypeStats{}}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, t := range sagastats.ByType(samples, elapsed) {
		st.Started += t.Started()
		st.NotStarted += t.NotStarted
		st.ByType[t.Type] = loadTypeStats{Counts: t.Counts,
			P50ms: ms(t.Latencies.P50), P95ms: ms(t.Latencies.P95), P99ms: ms(t.Latencies.P99), Throughput: t.Throughput}
	}
	if secs := elapsed.Seconds(); secs > 0 {
		st.Throughput = float64(st.Started) / secs
	}
	return st
}

func writeLoadReport(w io.Writer, st loadStats) {
	fmt.Fprintf(w, "%d sagas in %s: %.1f sagas/s\n", st.Sagas, st.Elapsed.Round(time.Millisecond), st.Throughput)
	if st.NotStarted > 0 {
		fmt.Fprintf(w, "  stopped by %s: %d of %d sagas not started\n", st.StoppedBy, st.NotStarted, st.Sagas)
	}
	types := make([]string, 0, len(st.ByType))
	for t := range st.ByType {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		s := st.ByType[t]
		var extra string
		if s.Unfinished > 0 {
			extra += fmt.Sprintf(", unfinished %d", s.Unfinished)
		}
		if s.NotStarted > 0 {
			extra += fmt.Sprintf(", not started %d", s.NotStarted)
		}
		fmt.Fprintf(w, "  %-9s %5d  completed %d, compensated %d, failed %d%s  p50 %.1fms  p95 %.1fms  p99 %.1fms  %.1f/s\n",
			t, s.Count, s.Completed, s.Compensated, s.Failed, extra, s.P50ms, s.P95ms, s.P99ms, s.Throughput)
	}
}

// progress shows how far a load got: one line rewritten in place on a
// terminal, a line every few seconds otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	total    int
	mu       sync.Mutex
	last     time.Time
	counts   map[loadOutcome]int
	interval time.Duration
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

func (p *progress) add(o loadOutcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[o]++
	done := p.counts[loadCompleted] + p.counts[loadCompensated] + p.counts[loadFailed] + p.counts[loadUnfinished]
	now := time.Now()
	if done < p.total && now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	line := fmt.Sprintf("%d/%d sagas  completed %d  compensated %d  failed %d",
		done, p.total, p.counts[loadCompleted], p.counts[loadCompensated], p.counts[loadFailed])
	if p.tty {
		const width = 30
		filled := done * width / p.total
		fmt.Fprintf(p.w, "\r[%s%s] %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), line)
		if done == p.total {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

func (a *app) loadCommand() *cobra.Command {
	c := newCommand("load", "Run sagas concurrently and report throughput and latency percentiles")
	c.Long = `load opens the accounts and stocks the skus it needs (names start with
load-<random>), runs --sagas sagas with --concurrency at a time, each started
and awaited on Temporal, and prints throughput, latency percentiles
(p50/p95/p99, nearest rank, as make bench computes them) per saga type and
how many completed, were compensated or failed. --failure-rate makes that
fraction of the sagas fail on purpose: a transfer from an empty account
(insufficient funds) or an order of an unknown sku.

The load's time limit is --duration, not --timeout: --timeout bounds each
command the load sends (the setup, each saga's start), while a load runs as
long as the system takes for --sagas sagas. Without --duration it runs until
every saga ended. With it, no saga starts after --duration; the sagas running
then get --timeout more to end. Sagas it never started are reported as "not
started" and sagas it stopped waiting for as "unfinished" (on Ctrl-C too),
never as failed.`
	sagas := c.Flags().Int("sagas", 100, "number of sagas")
	concurrency := c.Flags().Int("concurrency", 10, "sagas running at once")
	mix := c.Flags().String("mix", loadTransfer, "comma-separated saga types: transfer, order")
	failureRate := c.Flags().Float64("failure-rate", 0, "fraction of sagas (0 to 1) made to fail on purpose")
	currency := c.Flags().String("currency", "EUR", "currency of the accounts")
	deadline := c.Flags().Duration("deadline", 0, "each saga's deadline from its start: until then steps failing for a reason of the infrastructure are retried (default the saga type's)")
	duration := c.Flags().Duration("duration", 0, "time limit of the load: no saga starts after it (0: none, the load runs until every saga ended)")
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		plan, err := parseLoadPlan(*sagas, *concurrency, *mix, *failureRate, *currency)
		if err != nil {
			return err
		}
		if *deadline < 0 {
			return usagef("--deadline %s: must be positive", *deadline)
		}
		plan.Deadline = *deadline
		if *duration < 0 {
			return usagef("--duration %s: must not be negative (0 for no limit)", *duration)
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		setupCtx, cancel := a.context(ctx)
		defer cancel()
		tc, err := a.temporalClient(setupCtx)
		if err != nil {
			return err
		}
		if err := a.loadSetup(setupCtx, plan); err != nil {
			return fmt.Errorf("load setup: %w", err)
		}
		st := a.runLoad(ctx, tc, plan, *duration)
		if a.cfg.JSON {
			if err := a.printJSON(st); err != nil {
				return err
			}
		} else {
			writeLoadReport(a.out, st)
		}
		if ctx.Err() != nil {
			return errors.New("load interrupted; the report counts the sagas it did not start or wait for")
		}
		return nil
	}
	return c
}

// runLoad runs the plan's sagas, --concurrency at a time, until every one
// ended, ctx ends (Ctrl-C) or duration (when positive) passed.
func (a *app) runLoad(ctx context.Context, tc client.Client, plan loadPlan, duration time.Duration) loadStats {
	prog := &progress{w: a.errOut, tty: isTerminal(a.errOut), total: plan.Sagas, counts: map[loadOutcome]int{}, interval: 2 * time.Second}
	if prog.tty {
		prog.interval = 100 * time.Millisecond
	}
	samples := make([]loadSample, plan.Sagas)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	failing := make([]bool, plan.Sagas)
	for i := range failing {
		failing[i] = rng.Float64() < plan.FailureRate
		samples[i] = loadSample{Type: plan.typeOf(i), Outcome: loadNotStarted}
	}
	// launch ends when no saga may start any more; wait, when the load
	// stops waiting for the sagas running: at once on Ctrl-C, --timeout
	// after the end of --duration.
	launch, stopLaunch := context.WithCancel(ctx)
	defer stopLaunch()
	if duration > 0 {
		launch, stopLaunch = context.WithTimeout(ctx, duration)
		defer stopLaunch()
	}
	wait, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	jobs := make(chan int)
	var wg sync.WaitGroup
	began := time.Now()
	for range plan.Concurrency {
		wg.Go(func() {
			for i := range jobs {
				if launch.Err() != nil {
					continue // not started
				}
				s := a.loadOne(launch, wait, tc, plan, i, failing[i])
				samples[i] = s
				if s.Outcome != loadNotStarted {
					prog.add(s.Outcome)
				}
			}
		})
	}
	stoppedBy := ""
send:
	for i := range plan.Sagas {
		select {
		case jobs <- i:
		case <-launch.Done():
			stoppedBy = fmt.Sprintf("--duration %s", duration)
			if ctx.Err() != nil {
				stoppedBy = "interrupt"
			}
			break send
		}
	}
	close(jobs)
	if stoppedBy != "" && ctx.Err() == nil {
		time.AfterFunc(a.cfg.Timeout, stopWaiting)
	}
	wg.Wait()
	st := summarize(samples, time.Since(began))
	if st.NotStarted > 0 || ctx.Err() != nil {
		if stoppedBy == "" {
			stoppedBy = "interrupt"
		}
		st.StoppedBy = stoppedBy
	}
	return st
}

// Accounts and skus of a load.
func (p loadPlan) source() string   { return p.Prefix + "-source" }
func (p loadPlan) empty() string    { return p.Prefix + "-empty" }
func (p loadPlan) target() string   { return p.Prefix + "-target" }
func (p loadPlan) customer() string { return p.Prefix + "-customer" }
func (p loadPlan) merchant() string { return p.Prefix + "-merchant" }
func (p loadPlan) sku() string      { return p.Prefix + "-sku" }

// loadSetup opens the accounts and stocks the sku the load needs, with
// enough money and stock for every saga.
func (a *app) loadSetup(ctx context.Context, p loadPlan) error {
	need := int64(p.Sagas) * p.Amount
	open := func(id string, balance int64) error {
		return a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.CmdLedgerOpen, id,
			events.LedgerOpen{AccountID: id, Currency: p.Currency, Owner: "load", InitialBalance: balance}, nil)
	}
	if slices.Contains(p.Mix, loadTransfer) {
		for _, acc := range []struct {
			id      string
			balance int64
		}{{p.source(), need}, {p.empty(), 0}, {p.target(), 0}} {
			if err := open(acc.id, acc.balance); err != nil {
				return err
			}
		}
	}
	if slices.Contains(p.Mix, loadOrder) {
		if err := open(p.customer(), need); err != nil {
			return err
		}
		if err := open(p.merchant(), 0); err != nil {
			return err
		}
		if err := a.request(ctx, serviceInventory, a.cfg.InventoryQueue, events.CmdInventoryRestock, p.sku(),
			events.InventoryRestock{SKU: p.sku(), Quantity: int64(p.Sagas)}, nil); err != nil {
			return err
		}
	}
	return nil
}

// typeOf is the saga type of saga i.
func (p loadPlan) typeOf(i int) string { return p.Mix[i%len(p.Mix)] }

// loadOne starts saga i, unless launch ended, and waits for its end until
// wait ends. Its start is one command, bounded by --timeout.
func (a *app) loadOne(launch, wait context.Context, tc client.Client, p loadPlan, i int, fail bool) loadSample {
	typ := p.typeOf(i)
	id := fmt.Sprintf("%s-%d", p.Prefix, i)
	began := time.Now()
	var deadline time.Time
	if p.Deadline > 0 {
		deadline = began.Add(p.Deadline).UTC()
	}
	startCtx, cancel := a.context(launch)
	defer cancel()
	var (
		run client.WorkflowRun
		err error
	)
	switch typ {
	case loadTransfer:
		from := p.source()
		if fail {
			from = p.empty()
		}
		in := contract.TransferInput{TransferID: id, SourceAccountID: from, TargetAccountID: p.target(), Amount: p.Amount, Currency: p.Currency, Deadline: deadline}
		run, err = tc.ExecuteWorkflow(startCtx, contract.TransferStartOptions(id, a.cfg.TaskQueue), contract.TransferWorkflowType, in)
	default:
		sku := p.sku()
		if fail {
			sku = p.Prefix + "-unknown-sku"
		}
		o := events.OrderPlaced{OrderID: id, CustomerID: p.customer(), MerchantID: p.merchant(),
			Lines: []events.OrderLine{{SKU: sku, Quantity: 1, UnitPrice: p.Amount}}, Currency: p.Currency, Total: p.Amount, Deadline: deadline}
		run, err = tc.ExecuteWorkflow(startCtx, contract.OrderStartOptions(o, a.cfg.TaskQueue), contract.OrderWorkflowType, o)
	}
	if err != nil {
		if launch.Err() != nil {
			// Stopped while starting: whether Temporal got it is unknown, and
			// the load did not wait for it.
			return loadSample{Type: typ, Outcome: loadUnfinished}
		}
		return loadSample{Type: typ, Outcome: loadFailed, Latency: time.Since(began)}
	}
	var res json.RawMessage
	err = run.Get(wait, &res)
	if err != nil && wait.Err() != nil {
		return loadSample{Type: typ, Outcome: loadUnfinished}
	}
	return loadSample{Type: typ, Outcome: classify(res, err), Latency: time.Since(began)}
}

// classify maps a saga's result to a load outcome: a transfer that failed
// or was compensated and a cancelled order ended by compensating.
func classify(res json.RawMessage, err error) loadOutcome {
	if err != nil {
		return loadFailed
	}
	var r struct {
		Outcome string `json:"outcome"`
	}
	if json.Unmarshal(res, &r) != nil {
		return loadFailed
	}
	switch r.Outcome {
	case string(contract.TransferCompleted), string(contract.OrderConfirmed):
		return loadCompleted
	case string(contract.TransferFailed), string(contract.TransferCompensated), string(contract.OrderCancelled):
		return loadCompensated
	default:
		return loadFailed
	}
}
