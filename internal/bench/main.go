// Command bench is the project's one-command benchmark (`make bench`). On a
// Temporal dev server of its own, a RabbitMQ virtual host of its own and
// the worker built from ./worker, it runs side by side: (1) the order saga
// as the project runs it, (2) the same workflows with no-op activities, and
// (3) an empty workflow, each with its throughput, latency percentiles,
// tasks per saga (from the histories) and messages published, plus
// variants with other settings. It also runs the publisher and ledger Go
// benchmarks and writes everything, with the machine's description, to
// docs/BENCHMARKS.md.
//
// Everything it starts is stopped and removed when it ends, also on Ctrl-C.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sagaflow/sagaflow/internal/repo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "soak" {
		return runSoakMain(args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	return runUntilInterrupted(stderr, "bench", func(ctx context.Context) error {
		rep, err := Run(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		if err := writeReport(rep, cfg.Out, stdout); err != nil {
			return err
		}
		return incompleteError(rep.Incomplete())
	})
}

// runUntilInterrupted runs fn with a context that SIGINT and SIGTERM
// cancel and returns the exit status: 0, 1 with fn's error on one line
// after who, or 130 when interrupted.
func runUntilInterrupted(stderr io.Writer, who string, fn func(ctx context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fn(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "%s: interrupted; everything it started is stopped\n", who)
			return 130
		}
		fmt.Fprintf(stderr, "%s: %v\n", who, err)
		return 1
	}
	return 0
}

// writeReport renders the report to out: "-" for stdout, otherwise a path
// relative to the repository root, written only once rendering succeeded.
func writeReport(rep *Report, out string, stdout io.Writer) error {
	return writePage(func(w io.Writer) error { return renderReport(w, rep) }, out, stdout, "bench")
}

// writePage is writeReport for any page: render's output goes to out, and
// who names the program in the line saying where it went.
func writePage(render func(io.Writer) error, out string, stdout io.Writer, who string) error {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	if out == "-" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if !filepath.IsAbs(out) {
		root, err := repo.Root()
		if err != nil {
			return err
		}
		out = filepath.Join(root, out)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(stdout, "%s: report written to %s\n", who, out)
	return nil
}
