package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/repo"
)

const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/sagaflow/sagaflow/amqp
cpu: AMD EPYC
BenchmarkPublish/publishers=1/publisher-2         	    5000	    371454 ns/op	      2692 msgs/s
BenchmarkPublish/publishers=64/raw-pipelined-2    	    5000	     46589 ns/op	     21464 msgs/s
--- SKIP: BenchmarkLedgerCommands/postgres
    bench_test.go:30: PostgreSQL unavailable, skipping
BenchmarkLedgerCommands/sqlite-2                  	     200	    467000 ns/op	      2141 cmds/s	        25.00 p50_ms	        42.00 p99_ms
BenchmarkBroken-2 	 notanumber	 1 ns/op
PASS
ok  	github.com/sagaflow/sagaflow/amqp	12.345s
`

func TestParseGoBenchmarks(t *testing.T) {
	got, err := parseGoBenchmarks(strings.NewReader(goTestOutput))
	require.NoError(t, err)
	require.Equal(t, []GoBenchmark{
		{Name: "BenchmarkPublish/publishers=1/publisher", Iterations: 5000, Metrics: map[string]float64{"ns/op": 371454, "msgs/s": 2692}},
		{Name: "BenchmarkPublish/publishers=64/raw-pipelined", Iterations: 5000, Metrics: map[string]float64{"ns/op": 46589, "msgs/s": 21464}},
		{Name: "BenchmarkLedgerCommands/sqlite", Iterations: 200, Metrics: map[string]float64{"ns/op": 467000, "cmds/s": 2141, "p50_ms": 25, "p99_ms": 42}},
	}, got)
	require.Equal(t, "sqlite", got[2].Sub())
}

func TestGoBenchmarkCommand(t *testing.T) {
	g := goBenchmarkRun{Package: "./amqp/", Pattern: "^BenchmarkPublish$", Benchtime: "5000x"}
	require.Equal(t, "go test -run '^$' -bench '^BenchmarkPublish$' -benchtime 5000x -count 1 ./amqp/", g.Command())
	require.Equal(t, []string{"test", "-run", "^$", "-bench", "^BenchmarkPublish$", "-benchtime", "5000x", "-count", "1", "./amqp/"}, g.args())
}

func TestBenchtimeCount(t *testing.T) {
	require.Equal(t, 5000, benchtimeCount("5000x"))
	require.Equal(t, 300, benchtimeCount("300x"))
	require.Equal(t, 5000, benchtimeCount("10s"), "a duration gives the default count")
	require.Equal(t, 5000, benchtimeCount("0x"))
}

// TestWatermillStaysOutOfTheProjectModule: the peer publisher is a module
// of its own, so the project's `go test ./...` never builds it and the
// project's go.mod never names Watermill.
func TestWatermillStaysOutOfTheProjectModule(t *testing.T) {
	root, err := repo.Root()
	require.NoError(t, err)
	cmd := exec.Command("go", "list", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "github.com/sagaflow/sagaflow/internal/bench\n")
	require.NotContains(t, string(out), "watermill")
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.NotContains(t, string(gomod), "ThreeDotsLabs")
	peer, err := os.ReadFile(filepath.Join(root, watermillDir, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(peer), "github.com/ThreeDotsLabs/watermill-amqp/v3 v3.0.2")
}
