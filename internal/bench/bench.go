package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/repo"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// Report is everything one run measured, ready to render.
type Report struct {
	Config  Config
	Machine Machine
	// Elapsed is the whole run's duration.
	Elapsed time.Duration
	Rows    []RowResult
	// Publish and Ledger are the Go benchmarks' results, with the commands
	// that produced them; empty when skipped.
	Publish, Ledger, Codec                      []GoBenchmark
	PublishCommand, LedgerCommand, CodecCommand string
	// WatermillCommand is the command that measured Watermill's publisher
	// beside ours (its results are in Publish); empty when skipped.
	WatermillCommand string
	// VHost is the RabbitMQ virtual host the run created (and deleted).
	VHost string
	// Recorded are the costs of sagas before and after their versioned
	// changes, from the recorded histories.
	Recorded []RecordedSaga
}

// Row returns the result of a row with the default settings.
func (r *Report) Row(row int) (RowResult, bool) {
	for _, res := range r.Rows {
		if res.Spec.Row == row && res.Spec.Default() {
			return res, true
		}
	}
	return RowResult{}, false
}

// Incomplete lists the rows where some saga did not complete.
func (r *Report) Incomplete() []RowResult {
	var out []RowResult
	for _, res := range r.Rows {
		if res.Completed < res.Sagas {
			out = append(out, res)
		}
	}
	return out
}

// Run runs the whole benchmark and returns its report. Everything it
// starts (dev server, worker processes, vhost, temporary files) is gone
// when it returns, also when ctx is cancelled (Ctrl-C). Progress goes to
// log.
func Run(ctx context.Context, cfg Config, log io.Writer) (_ *Report, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	root, cli, err := prerequisites(cfg.AMQPURL)
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: cfg, Machine: describeMachine(ctx, cli)}
	if rep.Recorded, err = countRecorded(filepath.Join(root, "workflows", "testdata")); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sagaflow-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(log, "bench: logs kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	if !cfg.SkipGoBenchmarks {
		if err := runGoBenchmarks(ctx, root, cfg, rep, log); err != nil {
			return nil, err
		}
	}

	env := rowEnv{dir: dir, log: log}
	specs := planRows(cfg)
	needsBroker := false
	for _, s := range specs {
		needsBroker = needsBroker || throughWorker(s.Row)
	}
	if needsBroker {
		fmt.Fprintln(log, "bench: building ./worker")
		if env.workerBin, err = buildWorker(ctx, root, dir); err != nil {
			return nil, err
		}
	}

	if needsBroker {
		env.vhost, err = createVhost(ctx, cfg.AMQPURL, cfg.VHostPrefix)
		if err != nil {
			return nil, err
		}
		rep.VHost = env.vhost.Name
		defer func() {
			if verr := env.vhost.delete(); verr != nil {
				err = errors.Join(err, verr)
			}
		}()
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		conn, err := amqp.Dial(dctx, amqp.Config{URL: env.vhost.URL, ConnectionName: "sagaflow-bench"})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("connect to RabbitMQ vhost %s: %w", env.vhost.Name, err)
		}
		defer func() { _ = conn.Close() }()
		if env.requester, err = conn.NewRequester(amqp.RequesterConfig{ReplyQueuePrefix: "bench.reply"}); err != nil {
			return nil, err
		}
		defer func() { _ = env.requester.Close() }()
	}
	if slices.ContainsFunc(specs, func(s RowSpec) bool { return s.Cluster }) {
		fmt.Fprintf(log, "bench: starting a %d-node RabbitMQ cluster\n", clusterNodes)
		if env.cluster, err = startCluster(ctx); err != nil {
			return nil, err
		}
		defer func() {
			if cerr := env.cluster.close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}()
	}

	if slices.ContainsFunc(specs, func(s RowSpec) bool { return s.SelfHosted }) {
		if err := selfHostedAvailable(root); err != nil {
			return nil, err
		}
	}
	rows, err := runPasses(ctx, log, cfg, specs, devServers(cli, dir), runRowOn(env, cfg))
	rep.Rows = append(rep.Rows, rows...)
	if err != nil {
		return nil, err
	}
	rep.Machine.LoadAfter = loadAverage()
	rep.Elapsed = time.Since(began)
	return rep, nil
}

// prerequisites finds the repository root and the Temporal CLI and checks
// that the broker answers, failing with an errMissing otherwise.
func prerequisites(amqpURL string) (root, cli string, err error) {
	if root, err = repo.Root(); err != nil {
		return "", "", err
	}
	cli, ok := temporaltest.CLIPath()
	if !ok {
		return "", "", &errMissing{"Temporal CLI not found in ./bin, $TEMPORAL_CLI, PATH or $(go env GOPATH)/bin", "run `make temporal`"}
	}
	return root, cli, checkBroker(amqpURL)
}

// runPasses runs every spec cfg.Repeats times, each run on a dev server
// of its own, started for it and stopped after it: the dev server slows
// as its in-memory database fills, so a row run on a server that earlier
// rows had filled would pay for them. Each pass runs every row once,
// starting one row later than the pass before, so that a load that drifts
// touches all rows alike. A row's report is its median run.
func runPasses(ctx context.Context, log io.Writer, cfg Config, specs []RowSpec, start serverStarter, run rowRunner) ([]RowResult, error) {
	runs := make([][]RowResult, len(specs))
	for pass := 1; pass <= cfg.Repeats; pass++ {
		for j := range specs {
			i := passOrder(j, pass, len(specs))
			spec := specs[i]
			fmt.Fprintf(log, "bench: row %d (%s), run %d of %d: %d sagas, %d at a time, on a fresh Temporal server\n", spec.Row, spec.Settings(), pass, cfg.Repeats, cfg.Sagas, cfg.Concurrency)
			res, err := runOnFreshServer(ctx, start, run, spec)
			if err != nil {
				return nil, fmt.Errorf("row %d (%s), run %d: %w", spec.Row, spec.Settings(), pass, err)
			}
			fmt.Fprintf(log, "bench:   %d/%d completed, %.1f sagas/s, p50 %s p99 %s, alone %s\n", res.Completed, res.Sagas,
				res.Throughput, res.Latency.P50.Round(time.Millisecond), res.Latency.P99.Round(time.Millisecond), res.Alone.Round(time.Millisecond))
			runs[i] = append(runs[i], res)
		}
	}
	out := make([]RowResult, len(specs))
	for i := range specs {
		out[i] = medianRun(runs[i])
	}
	return out, nil
}

// rowServer is a started dev server as the rows see it.
type rowServer interface {
	Addr() string
	// PIDs are the server's processes, whose CPU the row reports.
	PIDs() []int
	stop() error
}

// serverStarter starts the Temporal server a spec runs on: a dev server
// with history.transferProcessorMaxPollRPS at spec.TransferPollRPS (0:
// the server's default), or a self-hosted one for spec.SelfHosted.
type serverStarter func(ctx context.Context, spec RowSpec) (rowServer, error)

// rowRunner runs one row on the dev server at srv.
type rowRunner func(ctx context.Context, srv rowServer, spec RowSpec) (RowResult, error)

// runOnFreshServer starts a dev server with the spec's setting, runs the
// row on it and stops it.
func runOnFreshServer(ctx context.Context, start serverStarter, run rowRunner, spec RowSpec) (_ RowResult, err error) {
	srv, err := start(ctx, spec)
	if err != nil {
		return RowResult{}, err
	}
	defer func() {
		if serr := srv.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	return run(ctx, srv, spec)
}

// devServers starts the Temporal CLI's dev servers, logging into dir, and
// for a self-hosted spec a self-hosted Temporal.
func devServers(cli, dir string) serverStarter {
	return func(ctx context.Context, spec RowSpec) (rowServer, error) {
		if spec.SelfHosted {
			s, err := startSelfHosted(ctx, dir)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
		s, err := startDevServer(ctx, cli, dir, spec.TransferPollRPS)
		if err != nil {
			return nil, err // not a nil *devServer in a non-nil interface
		}
		return s, nil
	}
}

// runRowOn runs a row on srv, with a client of its own.
func runRowOn(env rowEnv, cfg Config) rowRunner {
	return func(ctx context.Context, srv rowServer, spec RowSpec) (RowResult, error) {
		env.temporalAddr, env.serverPIDs = srv.Addr(), srv.PIDs()
		var err error
		env.client, err = client.Dial(client.Options{HostPort: srv.Addr(), Namespace: "default",
			Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(env.log, &slog.HandlerOptions{Level: slog.LevelError})))})
		if err != nil {
			return RowResult{}, fmt.Errorf("connect to the dev server: %w", err)
		}
		defer env.client.Close()
		res, err := runRow(ctx, env, cfg, spec)
		res.Server = srv.Addr()
		return res, err
	}
}

// passOrder is the index of the spec a pass runs j-th: pass 1 runs them in
// plan order, each later pass starts one spec further on.
func passOrder(j, pass, n int) int { return (j + pass - 1) % n }

// medianRun is the run of median throughput (the lower middle one of an
// even count), with every run's throughput in Runs. A run where sagas
// failed is the one reported, so a failure is never hidden by a median.
func medianRun(runs []RowResult) RowResult {
	tps := make([]float64, len(runs))
	for i, r := range runs {
		tps[i] = r.Throughput
	}
	for _, r := range runs {
		if r.Completed < r.Sagas {
			r.Runs = tps
			return r
		}
	}
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(tps[a], tps[b]) })
	m := runs[idx[(len(idx)-1)/2]]
	m.Runs = tps
	return m
}

// runGoBenchmarks runs BenchmarkPublish, BenchmarkLedgerCommands and
// BenchmarkCodec before
// the dev server starts, so they do not share the cores with it.
func runGoBenchmarks(ctx context.Context, root string, cfg Config, rep *Report, log io.Writer) error {
	env := append(os.Environ(), amqp.EnvURL+"="+cfg.AMQPURL)
	publish := goBenchmarkRun{Package: "./amqp/", Pattern: "^BenchmarkPublish$", Benchtime: cfg.PublishBenchtime}
	ledger := goBenchmarkRun{Package: "./services/ledger/", Pattern: "^BenchmarkLedgerCommands$", Benchtime: cfg.LedgerBenchtime}
	var err error
	fmt.Fprintf(log, "bench: %s\n", publish.Command())
	if rep.Publish, err = runGoBenchmark(ctx, root, env, publish); err != nil {
		return err
	}
	peer := watermillRun{Messages: benchtimeCount(cfg.PublishBenchtime)}
	fmt.Fprintf(log, "bench: %s\n", peer.Command())
	wm, err := runWatermill(ctx, root, env, peer)
	if err != nil {
		return err
	}
	rep.Publish = append(rep.Publish, wm...)
	rep.WatermillCommand = peer.Command()
	fmt.Fprintf(log, "bench: %s\n", ledger.Command())
	if rep.Ledger, err = runGoBenchmark(ctx, root, env, ledger); err != nil {
		return err
	}
	codecRun := goBenchmarkRun{Package: "./codec/", Pattern: "^BenchmarkCodec$", Benchtime: "20000x"}
	fmt.Fprintf(log, "bench: %s\n", codecRun.Command())
	if rep.Codec, err = runGoBenchmark(ctx, root, env, codecRun); err != nil {
		return err
	}
	rep.PublishCommand, rep.LedgerCommand, rep.CodecCommand = publish.Command(), ledger.Command(), codecRun.Command()
	if len(rep.Publish) == 0 || len(rep.Ledger) == 0 || len(rep.Codec) == 0 {
		return fmt.Errorf("go benchmarks printed no results (%d publish, %d ledger, %d codec lines)", len(rep.Publish), len(rep.Ledger), len(rep.Codec))
	}
	return nil
}

// incompleteError summarises the rows where sagas failed.
func incompleteError(rows []RowResult) error {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("row %d (%s): %d of %d sagas completed, first failure: %s",
			r.Spec.Row, r.Settings(), r.Completed, r.Sagas, r.FirstError))
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New(strings.Join(parts, "; "))
}
