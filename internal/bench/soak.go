package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	_ "modernc.org/sqlite" // the worker's SQLite files, read only

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/sagastats"
)

// defaultSoakSagas is the number of sagas of a full soak.
const defaultSoakSagas = 20000

// soakConfig configures `bench soak`: a long run of sagas at a steady rate
// through one worker process, watching that process and its tables.
type soakConfig struct {
	// AMQPURL is the broker; the soak runs in VHost on it.
	AMQPURL string
	// VHost is the soak's RabbitMQ virtual host, created (after deleting a
	// leftover one of that name) and deleted. Default sagaflow-soak.
	VHost string
	// Sagas is the number of sagas, half transfers and half orders.
	// Default 20000.
	Sagas int
	// Rate is the sagas started per second. Default 7.
	Rate float64
	// FailureRate is the fraction of sagas made to fail on purpose: a
	// transfer from an empty account, an order of an unknown sku. Default
	// 0.1.
	FailureRate float64
	// Retention is the worker's outbox, inbox and applied-events retention
	// during the soak: short, so that the tables are seen to stay bounded.
	// Default 2m.
	Retention time.Duration
	// MaxInFlight bounds the sagas started and not yet ended: a worker that
	// falls behind slows the soak down instead of piling up sagas. Default
	// 1000.
	MaxInFlight int
	// SagaTimeout is how long one saga may take before it counts as failed.
	// Default 5m.
	SagaTimeout time.Duration
	// SampleEvery is how often the worker and its tables are sampled for
	// the report's time series. Default 1m.
	SampleEvery time.Duration
	// StopAfter, when positive, is the soak's time limit: no saga starts
	// after it, and the report counts the rest as not started. Default 0:
	// none.
	StopAfter time.Duration
	// Out is where the report goes: "-" for stdout, or a path relative to
	// the repository root. Default docs/SOAK.md.
	Out string
	// Profiles, when set, is a directory (relative to the repository root
	// unless absolute) where the worker's heap profile and goroutine dump
	// are saved at the first reading and at each mark, as begin, start,
	// middle and end .heap and .goroutines; the worker then runs with
	// --pprof. Default empty: none saved.
	Profiles string
	// Command is the command line shown in the report.
	Command string
}

func (c *soakConfig) setDefaults() {
	if c.VHost == "" {
		c.VHost = "sagaflow-soak"
	}
	if c.Out == "" {
		c.Out = "docs/SOAK.md"
	}
	if c.Command == "" {
		c.Command = "make soak"
	}
}

// Validate reports every problem with the configuration.
func (c soakConfig) Validate() error {
	var errs []error
	if c.Sagas < 2 {
		errs = append(errs, fmt.Errorf("--sagas %d: want at least 2 (one of each type)", c.Sagas))
	}
	if !(c.Rate > 0) || c.Rate > 1000 {
		errs = append(errs, fmt.Errorf("--rate %v: want sagas per second above 0 and at most 1000", c.Rate))
	}
	if !(c.FailureRate >= 0 && c.FailureRate <= 1) {
		errs = append(errs, fmt.Errorf("--failure-rate %v: want a fraction between 0 and 1", c.FailureRate))
	}
	if c.Retention <= 0 {
		errs = append(errs, fmt.Errorf("--retention %s: want a positive duration", c.Retention))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("--max-in-flight %d: want a positive number", c.MaxInFlight))
	}
	if c.SagaTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--saga-timeout %s: want a positive duration", c.SagaTimeout))
	}
	if c.StopAfter < 0 {
		errs = append(errs, fmt.Errorf("--stop-after %s: want a positive duration, or 0 for no limit", c.StopAfter))
	}
	if c.SampleEvery <= 0 {
		errs = append(errs, fmt.Errorf("--sample-every %s: want a positive duration", c.SampleEvery))
	}
	if c.VHost == "" || strings.ContainsAny(c.VHost, "/ ") {
		errs = append(errs, fmt.Errorf("--vhost %q: want a name without slashes or spaces", c.VHost))
	}
	return errors.Join(errs...)
}

// parseSoakFlags reads `bench soak`'s flags.
func parseSoakFlags(args []string, getenv func(string) string, out io.Writer) (soakConfig, error) {
	c := soakConfig{}
	fs := flag.NewFlagSet("bench soak", flag.ContinueOnError)
	fs.SetOutput(out)
	amqpURL := getenv("AMQP_URL")
	if amqpURL == "" {
		amqpURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	fs.StringVar(&c.AMQPURL, "amqp-url", amqpURL, "RabbitMQ URL (env AMQP_URL); the soak runs in a vhost of its own there")
	fs.StringVar(&c.VHost, "vhost", "sagaflow-soak", "RabbitMQ virtual host of the soak (a leftover one of that name is deleted first)")
	fs.IntVar(&c.Sagas, "sagas", defaultSoakSagas, "sagas to run, half transfers and half orders")
	fs.Float64Var(&c.Rate, "rate", 7, "sagas started per second")
	fs.Float64Var(&c.FailureRate, "failure-rate", 0.1, "fraction of sagas made to fail on purpose (0 to 1)")
	fs.DurationVar(&c.Retention, "retention", 2*time.Minute, "the worker's outbox, inbox and applied-events retention during the soak")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 1000, "most sagas started and not yet ended")
	fs.DurationVar(&c.SagaTimeout, "saga-timeout", 5*time.Minute, "how long one saga may take before it counts as failed")
	fs.DurationVar(&c.SampleEvery, "sample-every", time.Minute, "how often the worker and its tables are sampled for the time series")
	fs.DurationVar(&c.StopAfter, "stop-after", 0, "time limit of the soak: no saga starts after it, the rest are reported as not started (0: none)")
	fs.StringVar(&c.Out, "out", "docs/SOAK.md", `report path relative to the repository root, or "-" for stdout`)
	fs.StringVar(&c.Command, "command", "make soak", "command line shown in the report")
	fs.StringVar(&c.Profiles, "profiles", "", "directory (relative to the repository root) to save the worker's heap profile and goroutine dump at each mark, e.g. .data/soak; the worker runs with --pprof (empty: none)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bench soak [flags]\n\n"+
			"Runs --sagas sagas (transfers and orders, --failure-rate of them failing on\n"+
			"purpose) at --rate a second through one worker process on a Temporal dev\n"+
			"server and a RabbitMQ vhost of its own, samples the worker's memory,\n"+
			"goroutines and file descriptors, its inbox, outbox and applied-events\n"+
			"tables and the queue depths, and writes them to --out. With --profiles DIR\n"+
			"it also saves the worker's heap profile and goroutine dump at each mark\n"+
			"(compare them: go tool pprof -top -inuse_space -base DIR/middle.heap DIR/end.heap).\n"+
			"At 7 sagas/s the default 20000 sagas take about 48 minutes;\n"+
			"--sagas 200 --rate 20 --retention 20s is a quick run.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	c.setDefaults()
	return c, c.Validate()
}

// runSoakMain is `bench soak`: it returns the exit status.
func runSoakMain(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseSoakFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench soak: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 2
	}
	return runUntilInterrupted(stderr, "bench soak", func(ctx context.Context) error {
		rep, err := runSoak(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		return writeSoakReport(rep, cfg.Out, stdout)
	})
}

// soakSnapshot is the state of the worker and the system at one moment.
type soakSnapshot struct {
	Label   string
	Elapsed time.Duration
	Started int
	Ended   int
	RSS     int64
	// HeapInuse is the worker's Go heap in use (go_memstats_heap_inuse_bytes).
	HeapInuse  int64
	Goroutines int
	FDs        int
	// Tables are row counts by "database.table".
	Tables map[string]int64
	// Queues are ready messages by queue name.
	Queues map[string]int
}

// soakReport is what a soak wrote down.
type soakReport struct {
	Config  soakConfig
	Machine Machine
	Began   time.Time
	// Launched is when the first saga was due; the snapshots' Elapsed
	// count from it.
	Launched time.Time
	Elapsed  time.Duration
	// Stopped says the soak ended by --stop-after before every saga started.
	Stopped  bool
	Samples  []sagastats.Sample
	Stats    []sagastats.TypeStats
	Marks    []soakSnapshot // start (after warm-up), middle, end
	Series   []soakSnapshot
	Errors   []string
	Interval time.Duration
}

// soakDatabases are the worker's SQLite databases and the tables of each
// the soak counts.
var soakDatabases = []struct {
	name   string
	tables []string
}{
	{"ledger", []string{"inbox", "outbox"}},
	{"inventory", []string{"inbox", "outbox"}},
	{"orders", []string{"inbox", "outbox", "orders_applied_events"}},
}

// soakQueues are the queues whose depths the soak reads, each with its
// dead letters.
var soakQueues = []string{contract.LedgerQueue, contract.InventoryQueue, contract.ReplyQueue,
	contract.BridgeQueue, contract.OrdersProjectionQueue, contract.NotificationsQueue, contract.OrdersQueryQueue}

func runSoak(ctx context.Context, cfg soakConfig, log io.Writer) (_ *soakReport, err error) {
	root, cli, err := prerequisites(cfg.AMQPURL)
	if err != nil {
		return nil, err
	}
	rep := &soakReport{Config: cfg, Machine: describeMachine(ctx, cli), Began: time.Now(),
		Interval: time.Duration(float64(time.Second) / cfg.Rate)}
	dir, err := os.MkdirTemp("", "sagaflow-soak-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(log, "soak: logs kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	fmt.Fprintln(log, "soak: building ./worker")
	bin, err := buildWorker(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	_ = rabbitmqctl(ctx, "delete_vhost", cfg.VHost) // a leftover of an interrupted soak
	vh, err := createNamedVhost(ctx, cfg.AMQPURL, cfg.VHost)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, vh.delete()) }()
	fmt.Fprintln(log, "soak: starting a Temporal dev server")
	srv, err := startDevServer(ctx, cli, dir, 0)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	tc, err := srv.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	ret := cfg.Retention.String()
	wdir := filepath.Join(dir, "run")
	env := []string{"OUTBOX_RETENTION=" + ret, "INBOX_RETENTION=" + ret, "APPLIED_EVENTS_RETENTION=" + ret}
	profiles := ""
	if cfg.Profiles != "" {
		if profiles, err = profilesDir(root, cfg.Profiles); err != nil {
			return nil, err
		}
		env = append(env, "WORKER_PPROF=true")
	}
	w, err := startWorker(ctx, bin, wdir, srv.HostPort, vh.URL, contract.TaskQueue, workerSettings{Env: env})
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := w.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		if err != nil {
			fmt.Fprintf(log, "soak: worker log %s:\n%s\n", w.LogPath, tailFile(w.LogPath, 30))
		}
	}()

	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := amqp.Dial(dctx, amqp.Config{URL: vh.URL, ConnectionName: "sagaflow-soak"})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ vhost %s: %w", vh.Name, err)
	}
	// Bounded: a close the broker never confirms must not keep the report
	// from being written.
	defer closeWithin(conn.Close, 15*time.Second)
	req, err := conn.NewRequester(amqp.RequesterConfig{ReplyQueuePrefix: "soak.reply"})
	if err != nil {
		return nil, err
	}
	defer closeWithin(req.Close, 15*time.Second)

	plan := newSoakPlan("soak", cfg)
	fmt.Fprintln(log, "soak: opening accounts and stocking skus")
	if err := plan.provision(ctx, req); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	probe := &soakProbe{worker: w, dir: wdir, conn: conn, profiles: profiles}
	fmt.Fprintf(log, "soak: %d sagas at %.1f/s (about %s), retention %s\n", cfg.Sagas, cfg.Rate,
		time.Duration(float64(cfg.Sagas)/cfg.Rate*float64(time.Second)).Round(time.Second), cfg.Retention)
	drive(ctx, tc, plan, cfg, probe, rep, log)
	rep.Elapsed = time.Since(rep.Began)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return rep, nil
}

// closeWithin runs closeFn and gives up waiting for it after d.
func closeWithin(closeFn func() error, d time.Duration) {
	done := make(chan struct{})
	go func() { _ = closeFn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// soakPlan is the sagas of a soak: saga i is a transfer when i is even and
// an order when odd, failing on purpose when failing[i].
type soakPlan struct {
	prefix    string
	accounts  transferAccounts
	empty     string
	pools     orderPools
	unknown   string
	failing   []bool
	transfers int
	orders    int
}

func newSoakPlan(prefix string, cfg soakConfig) soakPlan {
	p := soakPlan{prefix: prefix, accounts: newTransferAccounts(prefix + "-t"), empty: prefix + "-empty",
		pools: newOrderPools(prefix + "-o"), unknown: prefix + "-unknown-sku", failing: make([]bool, cfg.Sagas)}
	// Evenly spread over each type, not random: every stretch of the soak
	// fails as much. The k-th saga of a type fails when it crosses the next
	// whole multiple of 1/FailureRate.
	for i := range p.failing {
		k := float64(i / 2)
		p.failing[i] = int(math.Floor((k+1)*cfg.FailureRate+1e-9)) > int(math.Floor(k*cfg.FailureRate+1e-9))
		if i%2 == 0 {
			p.transfers++
		} else {
			p.orders++
		}
	}
	return p
}

func (p soakPlan) typeOf(i int) string {
	if i%2 == 0 {
		return "transfer"
	}
	return "order"
}

func (p soakPlan) provision(ctx context.Context, r *amqp.Requester) error {
	if err := p.accounts.provision(ctx, r, p.transfers); err != nil {
		return err
	}
	if err := sendCommand(ctx, r, contract.LedgerQueue, events.CmdLedgerOpen,
		events.LedgerOpen{AccountID: p.empty, Currency: currency, Owner: "soak"}); err != nil {
		return err
	}
	return p.pools.provision(ctx, r, p.orders)
}

// run runs saga i to its end.
func (p soakPlan) run(ctx context.Context, tc client.Client, i int) sagastats.Outcome {
	var (
		run client.WorkflowRun
		err error
	)
	if p.typeOf(i) == "transfer" {
		in := p.accounts.transfer(p.prefix+"-transfer", i)
		if p.failing[i] {
			in.SourceAccountID = p.empty
		}
		run, err = tc.ExecuteWorkflow(ctx, contract.TransferStartOptions(in.TransferID, contract.TaskQueue), contract.TransferWorkflowType, in)
		if err != nil {
			return sagastats.Failed
		}
		var res contract.TransferResult
		if err := run.Get(ctx, &res); err != nil {
			return sagastats.Failed
		}
		if res.Outcome == contract.TransferCompleted {
			return sagastats.Completed
		}
		return sagastats.Compensated
	}
	o := p.pools.order(p.prefix+"-order", i)
	if p.failing[i] {
		o.Lines[0].SKU = p.unknown
	}
	run, err = tc.ExecuteWorkflow(ctx, contract.OrderStartOptions(o, contract.TaskQueue), contract.OrderWorkflowType, o)
	if err != nil {
		return sagastats.Failed
	}
	var res contract.OrderResult
	if err := run.Get(ctx, &res); err != nil {
		return sagastats.Failed
	}
	if res.Outcome == contract.OrderConfirmed {
		return sagastats.Completed
	}
	return sagastats.Compensated
}

// drive starts the sagas at the configured rate, samples the system, and
// takes the three marks: start (after a tenth of the sagas, the warm-up),
// middle (half) and end (every saga ended).
func drive(ctx context.Context, tc client.Client, plan soakPlan, cfg soakConfig, probe *soakProbe, rep *soakReport, log io.Writer) {
	rep.Samples = make([]sagastats.Sample, cfg.Sagas)
	for i := range rep.Samples {
		rep.Samples[i] = sagastats.Sample{Type: plan.typeOf(i), Outcome: sagastats.NotStarted}
	}
	var (
		mu      sync.Mutex
		ended   int
		started int
		wg      sync.WaitGroup
	)
	snap := func(label string) soakSnapshot {
		mu.Lock()
		s, e := started, ended
		mu.Unlock()
		sn, errs := probe.snapshot(ctx, label)
		sn.Elapsed, sn.Started, sn.Ended = time.Since(rep.Launched), s, e
		if probe.profiles != "" && label != "sample" {
			errs = append(errs, probe.saveProfiles(ctx, label)...)
		}
		for _, err := range errs {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", label, err))
		}
		fmt.Fprintf(log, "soak: %-6s %s  started %d  ended %d  rss %s  heap %s  goroutines %d  fds %d  tables %d rows  queues %d ready\n",
			label, sn.Elapsed.Round(time.Second), s, e, mib(sn.RSS), mib(sn.HeapInuse), sn.Goroutines, sn.FDs, sum(sn.Tables), sum(sn.Queues))
		return sn
	}
	sampler := time.NewTicker(cfg.SampleEvery)
	defer sampler.Stop()
	slots := make(chan struct{}, cfg.MaxInFlight)
	tick := time.NewTicker(rep.Interval)
	defer tick.Stop()
	warm, half := max(1, cfg.Sagas/10), cfg.Sagas/2
	rep.Launched = time.Now()
	rep.Series = append(rep.Series, snap("begin"))
	var deadline <-chan time.Time
	if cfg.StopAfter > 0 {
		t := time.NewTimer(cfg.StopAfter)
		defer t.Stop()
		deadline = t.C
	}
launch:
	for i := range cfg.Sagas {
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				break launch
			case <-deadline:
				rep.Stopped = true
				fmt.Fprintf(log, "soak: --stop-after %s reached: %d of %d sagas started\n", cfg.StopAfter, i, cfg.Sagas)
				break launch
			case <-sampler.C:
				rep.Series = append(rep.Series, snap("sample"))
			case <-tick.C:
				waiting = false
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		switch i {
		case warm:
			rep.Marks = append(rep.Marks, snap("start"))
		case half:
			rep.Marks = append(rep.Marks, snap("middle"))
		}
		mu.Lock()
		started++
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-slots }()
			sctx, cancel := context.WithTimeout(ctx, cfg.SagaTimeout)
			defer cancel()
			t0 := time.Now()
			out := plan.run(sctx, tc, i)
			mu.Lock()
			rep.Samples[i].Outcome, rep.Samples[i].Latency = out, time.Since(t0)
			ended++
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-sampler.C:
			rep.Series = append(rep.Series, snap("sample"))
		}
	}
	if ctx.Err() != nil {
		return
	}
	rep.Stats = sagastats.ByType(rep.Samples, time.Since(rep.Launched))
	rep.Marks = append(rep.Marks, snap("end"))
	rep.Series = append(rep.Series, rep.Marks[len(rep.Marks)-1])
}

// soakProbe reads the worker process, its databases and the queues.
type soakProbe struct {
	worker *workerProcess
	dir    string
	conn   *amqp.Conn
	// profiles is where the marks' profiles go; empty: none are saved.
	profiles string
}

// profilesDir makes the directory of the profiles, relative to root
// unless absolute.
func profilesDir(root, dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--profiles: %w", err)
	}
	return dir, nil
}

// soakProfiles are the worker's profiles saved at a mark: the file suffix
// and the /debug/pprof/ path. The heap profile is taken after a
// collection (gc=1), so that it shows what is live at the mark and two
// marks compare (go tool pprof -base); the goroutine dump is the text form
// with a count per stack.
var soakProfiles = []struct{ suffix, path string }{
	{"heap", "heap?gc=1"},
	{"goroutines", "goroutine?debug=1"},
}

// saveProfiles saves the worker's profiles as <dir>/<label>.<suffix>.
func (p *soakProbe) saveProfiles(ctx context.Context, label string) []error {
	var errs []error
	for _, pr := range soakProfiles {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.worker.saveDebug(pctx, pr.path, filepath.Join(p.profiles, label+"."+pr.suffix))
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// snapshot reads everything it can; what it cannot read is returned as an
// error and left zero.
func (p *soakProbe) snapshot(ctx context.Context, label string) (soakSnapshot, []error) {
	s := soakSnapshot{Label: label, Tables: map[string]int64{}, Queues: map[string]int{}}
	var errs []error
	var err error
	pid := p.worker.cmd.Process.Pid
	if s.RSS, err = procStatusBytes(pid, "VmRSS"); err != nil {
		errs = append(errs, err)
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err != nil {
		errs = append(errs, err)
	} else {
		s.FDs = len(fds)
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	g, err := p.worker.metric(mctx, "go_goroutines")
	if err != nil {
		errs = append(errs, err)
	} else {
		s.Goroutines = int(g)
	}
	// The Go heap beside the RSS tells live memory from what the runtime
	// holds on to (fragmentation, freed spans not yet returned).
	heap, err := p.worker.metric(mctx, "go_memstats_heap_inuse_bytes")
	cancel()
	if err != nil {
		errs = append(errs, err)
	} else {
		s.HeapInuse = int64(heap)
	}
	for _, d := range soakDatabases {
		counts, err := countRows(ctx, filepath.Join(p.dir, d.name+".db"), d.tables)
		if err != nil {
			errs = append(errs, err)
		}
		for t, n := range counts {
			s.Tables[d.name+"."+t] = n
		}
	}
	for _, q := range soakQueues {
		for _, name := range []string{q, q + ".dlq"} {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			depth, err := p.conn.InspectQueue(qctx, name)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.Queues[name] = depth.Messages
		}
	}
	return s, errs
}

// countRows counts the rows of tables in a SQLite file, opened read only
// beside the worker that writes it.
func countRows(ctx context.Context, path string, tables []string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	out := map[string]int64{}
	for _, t := range tables {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return out, fmt.Errorf("count %s in %s: %w", t, filepath.Base(path), err)
		}
		out[t] = n
	}
	return out, nil
}

func sum[V int | int64](m map[string]V) V {
	var s V
	for _, v := range m {
		s += v
	}
	return s
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// soakTarget is one of the soak's pass/fail targets.
type soakTarget struct {
	What, Measured string
	Met            bool
}

// targets judges the marks: RSS from middle to end grows by less than
// 20%; goroutines and file descriptors stay flat (within 10% and a small
// slack); every table stays bounded by its retention: at the end no bigger
// than 25% above the middle (rows come and go at the same rate), and
// smaller than every row the soak wrote would be.
func (r *soakReport) targets() []soakTarget {
	if len(r.Marks) < 3 {
		return nil
	}
	mid, end := r.Marks[1], r.Marks[2]
	flat := func(a, b, slack int) bool { return float64(b) <= float64(a)*1.1+float64(slack) }
	growth := 100 * (float64(end.RSS)/float64(max(mid.RSS, 1)) - 1)
	ts := []soakTarget{
		{"worker RSS grows < 20% from middle to end", fmt.Sprintf("%s → %s (%+.1f%%)", mib(mid.RSS), mib(end.RSS), growth), growth < 20},
		{"goroutines flat", fmt.Sprintf("%d → %d", mid.Goroutines, end.Goroutines), flat(mid.Goroutines, end.Goroutines, 20)},
		{"open file descriptors flat", fmt.Sprintf("%d → %d", mid.FDs, end.FDs), flat(mid.FDs, end.FDs, 5)},
	}
	for _, name := range slices.Sorted(mapsKeys(end.Tables)) {
		a, b := mid.Tables[name], end.Tables[name]
		ts = append(ts, soakTarget{"table " + name + " bounded by retention", fmt.Sprintf("%d → %d rows", a, b),
			float64(b) <= float64(a)*1.25+50})
	}
	return ts
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// writeSoakReport renders the report to out, as writeReport does.
func writeSoakReport(rep *soakReport, out string, stdout io.Writer) error {
	return writePage(func(w io.Writer) error { return renderSoak(w, rep) }, out, stdout, "soak")
}

// renderSoak writes the report as Markdown.
func renderSoak(w io.Writer, r *soakReport) error {
	p := &printer{w: w}
	c := r.Config
	p.f("# Soak test\n\n")
	p.f("Written by `%s` (internal/bench soak); do not edit by hand.\n\n", c.Command)
	started := 0
	for _, t := range r.Stats {
		started += t.Started()
	}
	if c.Sagas < defaultSoakSagas {
		p.f("**A shorter run than the soak's default of %d sagas: %d sagas were asked for.**\n\n", defaultSoakSagas, c.Sagas)
	}
	if r.Stopped || started < c.Sagas {
		p.f("**A shortened run: %d of the %d sagas asked for were started** (stopped by --stop-after %s); the rest are counted as not started.\n\n",
			started, c.Sagas, c.StopAfter)
	}
	p.f("%d sagas (transfers and orders alternating, %.0f%% failing on purpose) started at %.1f/s through one worker process\n",
		c.Sagas, 100*c.FailureRate, c.Rate)
	p.f("(every part, services on SQLite) on a Temporal dev server and the RabbitMQ vhost `%s`, with the worker's outbox,\n", c.VHost)
	p.f("inbox and applied-events retention at %s so that the tables are seen to stay bounded. Ran %s, from %s.\n\n",
		c.Retention, r.Elapsed.Round(time.Second), r.Began.UTC().Format("2006-01-02 15:04 UTC"))
	m := r.Machine
	p.f("Machine: %s, %d CPUs, %s memory, %s %s, Go %s, RabbitMQ %s, Temporal CLI %s; load average before %s.\n\n",
		m.CPU, m.CPUs, mib(m.MemoryBytes), m.OS, m.Kernel, m.Go, m.RabbitMQ, m.TemporalCLI, m.LoadBefore)

	p.f("## Sagas\n\n")
	p.f("| saga | count | completed | compensated | failed | not started | p50 | p95 | p99 | sagas/s |\n")
	p.f("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range r.Stats {
		p.f("| %s | %d | %d | %d | %d | %d | %s | %s | %s | %.2f |\n", t.Type, t.Count, t.Completed, t.Compensated, t.Failed,
			t.NotStarted, ms(t.Latencies.P50)+" ms", ms(t.Latencies.P95)+" ms", ms(t.Latencies.P99)+" ms", t.Throughput)
	}
	p.f("\nCompensated sagas are the ones made to fail (insufficient funds, unknown sku); failed means a saga that did not end\n")
	p.f("within %s or ended in an error.\n\n", c.SagaTimeout)

	p.f("## Targets\n\n| target | middle → end | met |\n|---|---|---|\n")
	for _, t := range r.targets() {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		p.f("| %s | %s | %s |\n", t.What, t.Measured, met)
	}
	p.f("\n## Start (after warm-up), middle and end\n\n")
	p.f("The start mark is taken when a tenth of the sagas were started, the middle at half, the end once every saga ended.\n\n")
	header := "| | " + strings.Join(labels(r.Marks), " | ") + " |\n|---|" + strings.Repeat("---:|", len(r.Marks)) + "\n"
	p.f("%s", header)
	row := func(name string, v func(soakSnapshot) string) {
		cells := make([]string, len(r.Marks))
		for i, m := range r.Marks {
			cells[i] = v(m)
		}
		p.f("| %s | %s |\n", name, strings.Join(cells, " | "))
	}
	row("elapsed", func(s soakSnapshot) string { return s.Elapsed.Round(time.Second).String() })
	row("sagas started / ended", func(s soakSnapshot) string { return fmt.Sprintf("%d / %d", s.Started, s.Ended) })
	row("worker RSS", func(s soakSnapshot) string { return mib(s.RSS) })
	row("worker Go heap in use", func(s soakSnapshot) string { return mib(s.HeapInuse) })
	row("goroutines", func(s soakSnapshot) string { return strconv.Itoa(s.Goroutines) })
	row("open file descriptors", func(s soakSnapshot) string { return strconv.Itoa(s.FDs) })
	if len(r.Marks) > 0 {
		for _, t := range slices.Sorted(mapsKeys(r.Marks[0].Tables)) {
			row("rows in "+t, func(s soakSnapshot) string { return strconv.FormatInt(s.Tables[t], 10) })
		}
		for _, q := range slices.Sorted(mapsKeys(r.Marks[0].Queues)) {
			row("ready in queue "+q, func(s soakSnapshot) string { return strconv.Itoa(s.Queues[q]) })
		}
	}

	p.f("\n## Every %s\n\n", c.SampleEvery)
	p.f("| elapsed | started | ended | RSS | Go heap | goroutines | fds | inbox rows | outbox rows | applied-event rows | ready messages |\n")
	p.f("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Series {
		var inbox, outbox, applied int64
		for k, v := range s.Tables {
			switch {
			case strings.HasSuffix(k, ".inbox"):
				inbox += v
			case strings.HasSuffix(k, ".outbox"):
				outbox += v
			default:
				applied += v
			}
		}
		p.f("| %s | %d | %d | %s | %s | %d | %d | %d | %d | %d | %d |\n", s.Elapsed.Round(time.Second), s.Started, s.Ended, mib(s.RSS),
			mib(s.HeapInuse), s.Goroutines, s.FDs, inbox, outbox, applied, sum(s.Queues))
	}
	if len(r.Errors) > 0 {
		p.f("\n## Readings that failed\n\n")
		for _, e := range r.Errors {
			p.f("- %s\n", e)
		}
	}
	return p.err
}

func labels(ss []soakSnapshot) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Label
	}
	return out
}
