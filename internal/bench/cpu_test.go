package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseProcStat(t *testing.T) {
	// The name holds a space and a parenthesis; utime 150 and stime 50 ticks.
	line := "1234 (temporal (dev) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 12 0 100 1000 100"
	got, err := parseProcStat(line)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, got)
	_, err = parseProcStat("garbage")
	require.Error(t, err)
}

func TestParseSystemStat(t *testing.T) {
	// user nice system idle iowait irq softirq steal
	busy, total, err := parseSystemStat(strings.NewReader("cpu  100 0 50 800 50 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n"))
	require.NoError(t, err)
	require.Equal(t, 1500*time.Millisecond, busy, "idle and iowait are not busy")
	require.Equal(t, 10*time.Second, total)
}

func TestShare(t *testing.T) {
	t0 := time.Now()
	before := cpuSnapshot{at: t0, devServer: time.Second, hostBusy: 10 * time.Second}
	after := cpuSnapshot{at: t0.Add(10 * time.Second), devServer: 11 * time.Second, worker: 2 * time.Second,
		benchmark: time.Second, rabbit: 3 * time.Second, hostBusy: 28 * time.Second}
	c := share(before, after)
	require.InDelta(t, 1.0, c.DevServer, 1e-9)
	require.InDelta(t, 0.2, c.Worker, 1e-9)
	require.InDelta(t, 0.1, c.Benchmark, 1e-9)
	require.InDelta(t, 0.3, c.RabbitMQ, 1e-9)
	require.InDelta(t, 1.8, c.HostBusy, 1e-9)
	require.InDelta(t, 0.2, c.Others, 1e-9)
}
