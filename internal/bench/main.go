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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg, stderr)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted; everything it started is stopped")
			return 130
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if err := writeReport(rep, cfg.Out, stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if err := incompleteError(rep.Incomplete()); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// writeReport renders the report to out: "-" for stdout, otherwise a path
// relative to the repository root, written only once rendering succeeded.
func writeReport(rep *Report, out string, stdout io.Writer) error {
	var buf bytes.Buffer
	if err := renderReport(&buf, rep); err != nil {
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
	fmt.Fprintf(stdout, "bench: report written to %s\n", out)
	return nil
}
