package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/sagastats"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

func TestSoakFlagsDefaults(t *testing.T) {
	cfg, err := parseSoakFlags(nil, func(string) string { return "" }, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 20000, cfg.Sagas)
	require.InDelta(t, 7.0, cfg.Rate, 1e-9)
	require.InDelta(t, 0.1, cfg.FailureRate, 1e-9)
	require.Equal(t, 2*time.Minute, cfg.Retention)
	require.Equal(t, "sagaflow-soak", cfg.VHost)
	require.Equal(t, "docs/SOAK.md", cfg.Out)
	require.Zero(t, cfg.StopAfter)
	require.Empty(t, cfg.Profiles, "no profiles unless asked for")

	cfg, err = parseSoakFlags([]string{"--sagas", "50", "--rate", "20", "--stop-after", "1m", "--profiles", ".data/soak"},
		func(k string) string { return map[string]string{"AMQP_URL": "amqp://u:p@mq:5672/"}[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 50, cfg.Sagas)
	require.Equal(t, "amqp://u:p@mq:5672/", cfg.AMQPURL)
	require.Equal(t, time.Minute, cfg.StopAfter)
	require.Equal(t, ".data/soak", cfg.Profiles)
}

// At a mark the probe saves the worker's heap profile (the gzipped
// protocol buffer go tool pprof reads) and its goroutine dump, named after
// the mark.
func TestSoakSavesProfilesAtAMark(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir, err := profilesDir(t.TempDir(), "profiles")
	require.NoError(t, err)
	probe := &soakProbe{worker: &workerProcess{HTTPAddr: srv.Listener.Addr().String()}, profiles: dir}

	require.Empty(t, probe.saveProfiles(context.Background(), "middle"))
	heap, err := os.Open(filepath.Join(dir, "middle.heap"))
	require.NoError(t, err)
	defer heap.Close()
	zr, err := gzip.NewReader(heap)
	require.NoError(t, err, "a heap profile, not the text form")
	proto, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Contains(t, string(proto), "inuse_space")
	dump, err := os.ReadFile(filepath.Join(dir, "middle.goroutines"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(dump), "goroutine profile: total "), "%.80s", dump)

	// A worker without --pprof answers 404: the mark's reading fails,
	// naming the profile, instead of saving the error page.
	probe.worker.HTTPAddr = httptest.NewServer(http.NotFoundHandler()).Listener.Addr().String()
	errs := probe.saveProfiles(context.Background(), "end")
	require.Len(t, errs, 2)
	require.ErrorContains(t, errs[0], "/debug/pprof/heap")
	require.NoFileExists(t, filepath.Join(dir, "end.heap"))
}

// Bad flags end the soak before it starts anything, with one line.
func TestSoakBadFlagsAreOneLineErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"too few sagas", []string{"--sagas", "1"}, "--sagas 1: want at least 2"},
		{"zero rate", []string{"--rate", "0"}, "--rate 0: want sagas per second above 0"},
		{"failure rate above one", []string{"--failure-rate", "1.5"}, "--failure-rate 1.5: want a fraction between 0 and 1"},
		{"no retention", []string{"--retention", "0s"}, "--retention 0s: want a positive duration"},
		{"no room in flight", []string{"--max-in-flight", "0"}, "--max-in-flight 0: want a positive number"},
		{"negative stop-after", []string{"--stop-after", "-1m"}, "--stop-after -1m0s: want a positive duration, or 0"},
		{"vhost with a slash", []string{"--vhost", "a/b"}, `--vhost "a/b": want a name without slashes`},
		{"stray argument", []string{"now"}, `unexpected argument "now"`},
		{"two problems on one line", []string{"--sagas", "0", "--rate", "-1"}, "--sagas 0: want at least 2 (one of each type); --rate -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"soak"}, tc.args...), func(string) string { return "" }, &stdout, &stderr)
			require.Equal(t, 2, code)
			require.Empty(t, stdout.String())
			require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			require.True(t, strings.HasPrefix(stderr.String(), "bench soak: "), stderr.String())
			require.Contains(t, stderr.String(), tc.want)
		})
	}
}

func TestSoakPlanFailsEvenlyInEachType(t *testing.T) {
	p := newSoakPlan("p", soakConfig{Sagas: 200, FailureRate: 0.1})
	require.Equal(t, 100, p.transfers)
	require.Equal(t, 100, p.orders)
	failing := map[string]int{}
	for i, f := range p.failing {
		if f {
			failing[p.typeOf(i)]++
		}
	}
	require.Equal(t, map[string]int{"transfer": 10, "order": 10}, failing)
	none := newSoakPlan("p", soakConfig{Sagas: 10, FailureRate: 0})
	require.NotContains(t, none.failing, true)
}

func soakMark(label string, rss int64, goroutines, fds int, inbox int64) soakSnapshot {
	return soakSnapshot{Label: label, RSS: rss, Goroutines: goroutines, FDs: fds,
		Tables: map[string]int64{"ledger.inbox": inbox, "orders.orders_applied_events": inbox / 2},
		Queues: map[string]int{"ledger.commands": 0}}
}

func TestSoakTargets(t *testing.T) {
	const mb = 1 << 20
	steady := &soakReport{Marks: []soakSnapshot{
		soakMark("start", 60*mb, 400, 26, 900), soakMark("middle", 70*mb, 420, 26, 1000), soakMark("end", 80*mb, 425, 27, 1010)}}
	for _, tg := range steady.targets() {
		require.True(t, tg.Met, "%s: %s", tg.What, tg.Measured)
	}
	leaking := &soakReport{Marks: []soakSnapshot{
		soakMark("start", 60*mb, 400, 26, 900), soakMark("middle", 70*mb, 420, 26, 1000), soakMark("end", 90*mb, 800, 60, 2000)}}
	missed := map[string]bool{}
	for _, tg := range leaking.targets() {
		if !tg.Met {
			missed[tg.What] = true
		}
	}
	require.Equal(t, map[string]bool{
		"worker RSS grows < 20% from middle to end": true,
		"goroutines flat":                                         true,
		"open file descriptors flat":                              true,
		"table ledger.inbox bounded by retention":                 true,
		"table orders.orders_applied_events bounded by retention": true,
	}, missed)
	require.Empty(t, (&soakReport{}).targets(), "no marks, nothing to judge")
}

func TestSoakReportIsLabelledWhenShortened(t *testing.T) {
	rep := &soakReport{Config: soakConfig{Sagas: 100, Rate: 5, FailureRate: 0.1, Retention: time.Minute, StopAfter: time.Minute,
		VHost: "v", Command: "make soak", SampleEvery: time.Minute, SagaTimeout: time.Minute}, Stopped: true,
		Stats: sagastats.ByType([]sagastats.Sample{
			{Type: "transfer", Outcome: sagastats.Completed, Latency: time.Second},
			{Type: "order", Outcome: sagastats.Compensated, Latency: 2 * time.Second},
			{Type: "transfer", Outcome: sagastats.NotStarted},
		}, time.Minute),
		Marks: []soakSnapshot{soakMark("start", 1, 1, 1, 1), soakMark("middle", 1, 1, 1, 1), soakMark("end", 1, 1, 1, 1)}}
	rep.Series = rep.Marks
	var b strings.Builder
	require.NoError(t, renderSoak(&b, rep))
	out := b.String()
	require.Contains(t, out, "**A shorter run than the soak's default of 20000 sagas: 100 sagas were asked for.**")
	require.Contains(t, out, "**A shortened run: 2 of the 100 sagas asked for were started**")
	require.Contains(t, out, "| transfer | 2 | 1 | 0 | 0 | 1 |", "the not started column")
	require.Contains(t, out, "| | start | middle | end |")
	require.Contains(t, out, "| rows in ledger.inbox | 1 | 1 | 1 |")
	require.Contains(t, out, "do not edit by hand")
}

// TestSoakQuick is the soak program itself on a few sagas: a real worker
// process, RabbitMQ and a dev server, every saga ending, the three marks
// read (with the heap profiles saved at each), the retention seen to
// prune, the report written and the vhost gone.
func TestSoakQuick(t *testing.T) {
	amqpURL := requireBrokerAndCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "SOAK.md")
	profiles := t.TempDir()
	cfg := soakConfig{AMQPURL: amqpURL, VHost: "sagaflow-soak-test-" + uuid.NewString()[:8], Sagas: 20, Rate: 10, FailureRate: 0.2,
		Retention: 2 * time.Second, MaxInFlight: 100, SagaTimeout: 4 * time.Minute, SampleEvery: time.Second, Out: out, Command: "go test ./internal/bench",
		Profiles: profiles}
	cfg.setDefaults()
	require.NoError(t, cfg.Validate())
	var log strings.Builder
	rep, err := runSoak(ctx, cfg, &log)
	require.NoError(t, err, log.String())

	require.Len(t, rep.Stats, 2)
	for _, st := range rep.Stats {
		require.Equal(t, 10, st.Count, st.Type)
		require.Equal(t, 8, st.Completed, "%s: %+v", st.Type, st)
		require.Equal(t, 2, st.Compensated, "the sagas made to fail compensate: %+v", st)
		require.Positive(t, st.Latencies.P50)
	}
	require.Len(t, rep.Marks, 3)
	for _, m := range rep.Marks {
		require.Positive(t, m.RSS, m.Label)
		require.Positive(t, m.HeapInuse, m.Label)
		require.FileExists(t, filepath.Join(profiles, m.Label+".heap"), "the worker runs with --pprof")
		require.FileExists(t, filepath.Join(profiles, m.Label+".goroutines"))
		require.Positive(t, m.Goroutines, m.Label)
		require.Positive(t, m.FDs, m.Label)
		require.Len(t, m.Tables, 7, "every inbox, outbox and applied-events table: %v", m.Tables)
		require.Contains(t, m.Queues, "ledger.commands")
		require.Contains(t, m.Queues, "orders-projection.dlq")
	}
	require.Empty(t, rep.Errors)
	// The tables are read at every mark; whether a sweep (every 5 s) ran
	// before the end of a run this short depends on the machine's speed,
	// so the pruning itself is tested where it is deterministic
	// (services/store TestRelaySweepPrunesRowsOlderThanTheirRetention,
	// services/orders).
	require.Positive(t, rep.Marks[2].Tables["ledger.inbox"], "the ledger's inbox is read")

	require.NoError(t, writeSoakReport(rep, out, &bytes.Buffer{}))
	page, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Contains(t, string(page), "| order | 10 | 8 | 2 | 0 | 0 |")
	require.Contains(t, string(page), "## Targets")

	vhosts, err := exec.Command("rabbitmqctl", "list_vhosts").Output()
	require.NoError(t, err)
	require.NotContains(t, string(vhosts), cfg.VHost, "the soak deletes its vhost")
}

// requireBrokerAndCLI skips a test in -short mode (it starts a dev server
// and a worker process) and returns the broker's URL, failing (in CI) or
// skipping when the broker, rabbitmqctl or the Temporal CLI is missing.
func requireBrokerAndCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a dev server and a worker process")
	}
	amqpURL := testenv.AMQPURL(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl", "install RabbitMQ's CLI tools and put rabbitmqctl on PATH")
	}
	if _, ok := temporaltest.CLIPath(); !ok {
		testenv.Unavailable(t, "Temporal CLI", "run `make temporal`")
	}
	return amqpURL
}
