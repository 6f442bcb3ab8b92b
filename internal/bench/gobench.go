package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// GoBenchmark is one result line of `go test -bench`.
type GoBenchmark struct {
	// Name is the benchmark's full name without the -GOMAXPROCS suffix,
	// such as "BenchmarkPublish/publishers=64/publisher".
	Name string
	// Iterations is b.N.
	Iterations int
	// Metrics maps a unit ("ns/op", "msgs/s", "p50_ms") to its value.
	Metrics map[string]float64
}

// Sub returns the name's part after the top-level benchmark's name and its
// slash: "publishers=64/publisher" for the example above.
func (b GoBenchmark) Sub() string {
	_, sub, _ := strings.Cut(b.Name, "/")
	return sub
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBenchmarks reads the result lines of `go test -bench` output and
// ignores everything else (logs, PASS, ok lines).
func parseGoBenchmarks(r io.Reader) ([]GoBenchmark, error) {
	var out []GoBenchmark
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields)%2 != 0 {
			continue
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		b := GoBenchmark{Name: procsSuffix.ReplaceAllString(fields[0], ""), Iterations: n, Metrics: map[string]float64{}}
		valid := true
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				valid = false
				break
			}
			b.Metrics[fields[i+1]] = v
		}
		if valid {
			out = append(out, b)
		}
	}
	return out, sc.Err()
}

// goBenchmarkRun is one `go test -bench` invocation.
type goBenchmarkRun struct {
	// Package is the package path, such as "./amqp/".
	Package string
	// Pattern is the -bench regexp.
	Pattern string
	// Benchtime is -benchtime, such as "5000x".
	Benchtime string
}

// Command is the command line that runs it.
func (g goBenchmarkRun) Command() string {
	return fmt.Sprintf("go test -run '^$' -bench '%s' -benchtime %s -count 1 %s", g.Pattern, g.Benchtime, g.Package)
}

func (g goBenchmarkRun) args() []string {
	return []string{"test", "-run", "^$", "-bench", g.Pattern, "-benchtime", g.Benchtime, "-count", "1", g.Package}
}

// runGoBenchmark runs g in the repository root and parses its results.
// Benchmarks that skipped (a service missing) are simply absent.
func runGoBenchmark(ctx context.Context, root string, env []string, g goBenchmarkRun) ([]GoBenchmark, error) {
	cmd := command(ctx, "go", g.args()...)
	cmd.Dir, cmd.Env = root, env
	res, _, err := runBenchmarkCommand(ctx, cmd, g.Command())
	return res, err
}

// runBenchmarkCommand runs cmd, shown as name in errors, and parses the
// `go test -bench` result lines of its output, which it also returns.
func runBenchmarkCommand(ctx context.Context, cmd *exec.Cmd, name string) ([]GoBenchmark, string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", fmt.Errorf("%s: %w\n%s", name, err, lastLines(out.String(), 20))
	}
	res, err := parseGoBenchmarks(bytes.NewReader(out.Bytes()))
	if err != nil {
		return nil, "", fmt.Errorf("%s: parse output: %w", name, err)
	}
	return res, out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// watermillDir is the separate module, relative to the repository root,
// of the publisher's peer: Watermill's AMQP publisher.
const watermillDir = "internal/bench/watermill"

// watermillRun is one run of the Watermill publisher benchmark.
type watermillRun struct {
	// Messages is how many messages each case publishes.
	Messages int
}

// Command is the command line that runs it.
func (w watermillRun) Command() string {
	return fmt.Sprintf("(cd %s && go run . --messages %d)", watermillDir, w.Messages)
}

// runWatermill runs the Watermill publisher benchmark in its own module
// (GOWORK off, so that no workspace pulls it into the project's) and
// parses its `go test -bench`-style lines.
func runWatermill(ctx context.Context, root string, env []string, w watermillRun) ([]GoBenchmark, error) {
	cmd := command(ctx, "go", "run", ".", "--messages", strconv.Itoa(w.Messages))
	cmd.Dir, cmd.Env = filepath.Join(root, watermillDir), append(env, "GOWORK=off")
	res, out, err := runBenchmarkCommand(ctx, cmd, w.Command())
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s printed no results:\n%s", w.Command(), lastLines(out, 20))
	}
	return res, nil
}

// benchtimeCount is the iteration count of a -benchtime such as "5000x";
// a duration such as "10s" gives 5000, the default count.
func benchtimeCount(benchtime string) int {
	if n, err := strconv.Atoi(strings.TrimSuffix(benchtime, "x")); err == nil && strings.HasSuffix(benchtime, "x") && n > 0 {
		return n
	}
	return 5000
}
