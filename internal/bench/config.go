package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sagaflow/sagaflow/amqp"
)

// Config is what one benchmark run measures and how.
type Config struct {
	// Sagas is how many sagas each run of a row starts. Default 500.
	Sagas int
	// Repeats is how many times each row runs; the report gives the
	// median run with the range of all of them. Default 3.
	Repeats int
	// Concurrency is how many sagas of a row are in flight at once. Default 100.
	Concurrency int
	// Warmup is how many sagas each row runs, uncounted, before measuring,
	// so worker start-up and first connections stay out of the figures.
	// Default 20; 0 is allowed.
	Warmup int
	// Rows are the rows to run, from 1 (the order saga through the worker
	// process), 2 (pure orchestration), 3 (empty workflow), 4 (the transfer
	// saga through the worker process) and 5 (the transfer saga with no-op
	// activities). Default all.
	Rows []int
	// Variants also runs the rows again with other settings (more pollers,
	// eager workflow start). Default true.
	Variants bool
	// MorePollers is the poller count of the "more pollers" variant.
	// Default 16 (the worker's default is 4).
	MorePollers int
	// TransferPollRPS is history.transferProcessorMaxPollRPS of the dev
	// servers every row runs on a second time, with or without variants:
	// the setting `make demo` runs with, on which the tail check judges
	// the rows too. Default 1000 (the server's default is 20); negative
	// leaves those runs out.
	TransferPollRPS int
	// HistorySample is how many sagas per row have their histories read to
	// count workflow and activity tasks. Default 50.
	HistorySample int
	// SkipGoBenchmarks leaves out BenchmarkPublish and
	// BenchmarkLedgerCommands.
	SkipGoBenchmarks bool
	// SkipCluster leaves out the cluster row: row 1 on a local 3-node
	// RabbitMQ cluster (rabbitmq-server installed, run as root or as the
	// rabbitmq user) with quorum queues and two orchestration workers.
	// Default false: the row runs beside row 1.
	SkipCluster bool
	// SkipSelfHosted leaves out row 1 on a self-hosted Temporal
	// (internal/temporalcluster: frontend, matching, worker and two
	// history hosts on the local PostgreSQL).
	SkipSelfHosted bool
	// PublishBenchtime is -benchtime of BenchmarkPublish. Default 5000x.
	PublishBenchtime string
	// LedgerBenchtime is -benchtime of BenchmarkLedgerCommands. Default 5000x.
	LedgerBenchtime string
	// AMQPURL is the broker; the run creates a virtual host of its own
	// there. Default $AMQP_URL, then amqp.DefaultURL.
	AMQPURL string
	// VHostPrefix starts the name of the virtual host the run creates (a
	// random suffix follows). Default "sagaflow-bench-".
	VHostPrefix string
	// Out is the Markdown report's path, relative to the repository root
	// unless absolute; "-" writes it to standard output. Default
	// docs/BENCHMARKS.md.
	Out string
	// RowTimeout bounds one row. Default 30m.
	RowTimeout time.Duration
	// Command is the command line printed in the report as the way to
	// reproduce it. Default "make bench".
	Command string
}

func (c *Config) setDefaults() {
	if c.Sagas == 0 {
		c.Sagas = 500
	}
	if c.Repeats == 0 {
		c.Repeats = 3
	}
	if c.Concurrency == 0 {
		c.Concurrency = 100
	}
	if len(c.Rows) == 0 {
		c.Rows = []int{1, 2, 3, 4, 5}
	}
	if c.MorePollers == 0 {
		c.MorePollers = 16
	}
	if c.TransferPollRPS == 0 {
		c.TransferPollRPS = 1000
	}
	if c.HistorySample == 0 {
		c.HistorySample = 50
	}
	if c.PublishBenchtime == "" {
		c.PublishBenchtime = "5000x"
	}
	if c.LedgerBenchtime == "" {
		c.LedgerBenchtime = "5000x"
	}
	if c.AMQPURL == "" {
		c.AMQPURL = amqp.DefaultURL
	}
	if c.VHostPrefix == "" {
		c.VHostPrefix = "sagaflow-bench-"
	}
	if c.Out == "" {
		c.Out = "docs/BENCHMARKS.md"
	}
	if c.RowTimeout == 0 {
		c.RowTimeout = 30 * time.Minute
	}
	if c.Command == "" {
		c.Command = "make bench"
	}
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Sagas <= 0 {
		errs = append(errs, fmt.Errorf("sagas %d: must be positive", c.Sagas))
	}
	if c.Repeats <= 0 {
		errs = append(errs, fmt.Errorf("repeats %d: must be positive", c.Repeats))
	}
	if c.Concurrency <= 0 {
		errs = append(errs, fmt.Errorf("concurrency %d: must be positive", c.Concurrency))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup %d: must not be negative", c.Warmup))
	}
	for _, r := range c.Rows {
		if r < 1 || r > maxRow {
			errs = append(errs, fmt.Errorf("row %d: want 1 to %d", r, maxRow))
		}
	}
	if c.MorePollers <= 0 {
		errs = append(errs, fmt.Errorf("more-pollers %d: must be positive", c.MorePollers))
	}
	if c.HistorySample < 0 {
		errs = append(errs, fmt.Errorf("history-sample %d: must not be negative", c.HistorySample))
	}
	if c.RowTimeout <= 0 {
		errs = append(errs, fmt.Errorf("row-timeout %s: must be positive", c.RowTimeout))
	}
	return errors.Join(errs...)
}

// parseFlags reads the Config from the command line, defaults from getenv.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.Sagas, "sagas", 500, "sagas per run of a row")
	fs.IntVar(&c.Repeats, "repeats", 3, "runs of each row; the report shows the median run and the range")
	fs.IntVar(&c.Concurrency, "concurrency", 100, "sagas in flight at once")
	fs.IntVar(&c.Warmup, "warmup", 20, "uncounted sagas run before each row")
	rows := fs.String("rows", "1,2,3,4,5", "rows to run: 1 order saga through the worker, 2 its pure orchestration, 3 empty workflow, 4 transfer saga through the worker, 5 its pure orchestration")
	fs.BoolVar(&c.Variants, "variants", true, "also run the rows with other settings (more pollers, eager workflow start)")
	fs.IntVar(&c.MorePollers, "more-pollers", 16, "pollers of the more-pollers variant (the worker's default is 4)")
	fs.IntVar(&c.TransferPollRPS, "transfer-poll-rps", 1000, "history.transferProcessorMaxPollRPS of the second server setting every row also runs on, as make demo does (server default 20); negative leaves it out")
	fs.IntVar(&c.HistorySample, "history-sample", 50, "sagas per row whose histories are read to count tasks")
	fs.BoolVar(&c.SkipGoBenchmarks, "skip-go-benchmarks", false, "leave out BenchmarkPublish and BenchmarkLedgerCommands")
	fs.BoolVar(&c.SkipSelfHosted, "skip-self-hosted", false, "leave out row 1 on a self-hosted Temporal (frontend, matching, worker and two history hosts on the local PostgreSQL; it needs `make temporal-server`)")
	fs.BoolVar(&c.SkipCluster, "skip-cluster", false, "leave out row 1 on a local 3-node RabbitMQ cluster with quorum queues and two orchestration workers (it needs rabbitmq-server and root or the rabbitmq user)")
	fs.StringVar(&c.PublishBenchtime, "publish-benchtime", "5000x", "-benchtime of BenchmarkPublish")
	fs.StringVar(&c.LedgerBenchtime, "ledger-benchtime", "5000x", "-benchtime of BenchmarkLedgerCommands")
	amqpURL := amqp.DefaultURL
	if v := getenv(amqp.EnvURL); v != "" {
		amqpURL = v
	}
	fs.StringVar(&c.AMQPURL, "amqp-url", amqpURL, "RabbitMQ URL (env "+amqp.EnvURL+"); the run uses a virtual host of its own")
	fs.StringVar(&c.VHostPrefix, "vhost-prefix", "sagaflow-bench-", "start of the name of the RabbitMQ virtual host the run creates and deletes")
	fs.StringVar(&c.Out, "out", "docs/BENCHMARKS.md", "report path, relative to the repository root; - for standard output")
	fs.DurationVar(&c.RowTimeout, "row-timeout", 30*time.Minute, "longest a row may take")
	fs.StringVar(&c.Command, "command", "make bench", "command shown in the report as the way to reproduce it")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./internal/bench [flags]\n\n"+
			"Runs the saga benchmark on a Temporal dev server of its own (./bin/temporal),\n"+
			"the RabbitMQ at --amqp-url (a virtual host of its own) and the worker built\n"+
			"from ./worker, plus the publisher and ledger Go benchmarks, and writes the\n"+
			"results to docs/BENCHMARKS.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	var err error
	if c.Rows, err = parseRows(*rows); err != nil {
		return c, err
	}
	c.setDefaults()
	return c, c.Validate()
}

// parseRows reads a comma-separated list of row numbers.
func parseRows(s string) ([]int, error) {
	var rows []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > maxRow {
			return nil, fmt.Errorf("--rows: %q is not a row from 1 to %d", f, maxRow)
		}
		if !slices.Contains(rows, n) {
			rows = append(rows, n)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("--rows: name at least one row from 1 to %d", maxRow)
	}
	slices.Sort(rows)
	return rows, nil
}
