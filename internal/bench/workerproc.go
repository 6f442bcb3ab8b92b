package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/internal/tracing"
)

// buildWorker builds ./worker into dir, as the system tests do.
func buildWorker(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "worker")
	cmd := command(ctx, "go", "build", "-o", bin, "./worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./worker: %w\n%s", err, out)
	}
	return bin, nil
}

// workerSettings are the worker process's settings a row varies.
type workerSettings struct {
	// Pollers is --pollers; 0 keeps the worker's default.
	Pollers int
	// CodecKeys is the key file of the payload codec; empty: off.
	CodecKeys string
	// Run is --run; empty: every part.
	Run string
	// QueueType is AMQP_QUEUE_TYPE; empty: the worker's default.
	QueueType string
	// OTLPEndpoint turns tracing on, exporting there; empty: off.
	OTLPEndpoint string
	// Env adds KEY=VALUE entries to the worker's environment.
	Env []string
}

// workerProcess is one worker process with every part: workflows,
// activities, replies, bridge, ledger and inventory on SQLite, projection,
// notifications.
type workerProcess struct {
	HTTPAddr string
	LogPath  string
	cmd      *exec.Cmd
	done     chan struct{}
}

// startWorker starts the worker binary against the dev server and the
// vhost, with its SQLite files in dir, and waits until /healthz answers ok
// (every consumer consuming).
func startWorker(ctx context.Context, bin, dir, temporalAddr, amqpURL, taskQueue string, s workerSettings) (*workerProcess, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &workerProcess{HTTPAddr: addr, LogPath: filepath.Join(dir, "worker.log"), done: make(chan struct{})}
	logFile, err := os.Create(w.LogPath)
	if err != nil {
		return nil, err
	}
	// Stopped by stop (SIGTERM, graceful), not by ctx: a Ctrl-C must still
	// let it drain before the dev server and the vhost go.
	w.cmd = command(context.WithoutCancel(ctx), bin)
	w.cmd.Env = append(os.Environ(),
		"AMQP_URL="+amqpURL,
		"TEMPORAL_ADDRESS="+temporalAddr,
		"TEMPORAL_NAMESPACE=default",
		"TEMPORAL_TASK_QUEUE="+taskQueue,
		"LEDGER_DSN="+filepath.Join(dir, "ledger.db"),
		"INVENTORY_DSN="+filepath.Join(dir, "inventory.db"),
		"ORDERS_DSN="+filepath.Join(dir, "orders.db"),
		"METRICS_ADDR="+addr,

		"LOG_FORMAT=json",
		"LOG_LEVEL=warn",
		"SHUTDOWN_GRACE=10s",
	)
	if s.CodecKeys != "" {
		w.cmd.Env = append(w.cmd.Env, codec.EnvKeys+"="+s.CodecKeys)
	}
	// Set either way: a collector in the benchmark's own environment must
	// not trace the untraced rows.
	w.cmd.Env = append(w.cmd.Env, tracing.EnvEndpoint+"="+s.OTLPEndpoint, tracing.EnvServiceName+"=sagaflow-worker")
	run := s.Run
	if run == "" {
		run = "all"
	}
	w.cmd.Env = append(w.cmd.Env, "WORKER_RUN="+run)
	if s.QueueType != "" {
		w.cmd.Env = append(w.cmd.Env, amqp.EnvQueueType+"="+s.QueueType)
	}
	if s.Pollers > 0 {
		w.cmd.Env = append(w.cmd.Env, "TEMPORAL_POLLERS="+strconv.Itoa(s.Pollers))
	}
	w.cmd.Env = append(w.cmd.Env, s.Env...)
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	if err := w.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start worker: %w", err)
	}
	go func() { _ = w.cmd.Wait(); _ = logFile.Close(); close(w.done) }()
	if err := w.waitHealthy(ctx); err != nil {
		_ = w.stop()
		return nil, err
	}
	return w, nil
}

// waitHealthy polls /healthz: the process offers no other signal that its
// consumers are consuming.
func (w *workerProcess) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-w.done:
			return fmt.Errorf("worker exited while starting; see %s\n%s", w.LogPath, tailFile(w.LogPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get("http://" + w.HTTPAddr + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = strings.TrimSpace(string(body))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("worker not healthy after 60s: %s; see %s", last, w.LogPath)
}

// published reads sagaflow_amqp_published_total from /metrics.
func (w *workerProcess) published(ctx context.Context) (float64, error) {
	return w.metric(ctx, "sagaflow_amqp_published_total")
}

// metric reads the sum of a metric's samples from /metrics.
func (w *workerProcess) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.HTTPAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("worker /metrics: %w", err)
	}
	defer resp.Body.Close()
	return metricSum(resp.Body, name)
}

// settingsOf reads the Temporal worker settings from the /metrics of the
// processes that run workflows (a services worker states none); they must
// agree.
func settingsOf(ctx context.Context, procs []*workerProcess) (WorkerSettings, error) {
	var found []WorkerSettings
	for _, w := range procs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.HTTPAddr+"/metrics", nil)
		if err != nil {
			return WorkerSettings{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return WorkerSettings{}, fmt.Errorf("worker /metrics: %w", err)
		}
		byName, err := metricByLabel(resp.Body, workerSettingMetric, "setting")
		_ = resp.Body.Close()
		if err != nil {
			return WorkerSettings{}, err
		}
		if len(byName) == 0 {
			continue
		}
		s := WorkerSettings{Pollers: int(byName["pollers"]), MaxConcurrentWorkflowTasks: int(byName["max_concurrent_workflow_tasks"]),
			MaxConcurrentActivities: int(byName["max_concurrent_activities"]), FromProcess: true}
		if s.Pollers <= 0 || s.MaxConcurrentWorkflowTasks <= 0 || s.MaxConcurrentActivities <= 0 {
			return WorkerSettings{}, fmt.Errorf("worker /metrics: %s incomplete: %v", workerSettingMetric, byName)
		}
		found = append(found, s)
	}
	if len(found) == 0 {
		return WorkerSettings{}, fmt.Errorf("no worker process states %s on /metrics", workerSettingMetric)
	}
	for _, s := range found[1:] {
		if s != found[0] {
			return WorkerSettings{}, fmt.Errorf("the worker processes run with different settings: %+v and %+v", found[0], s)
		}
	}
	return found[0], nil
}

// workerSettingMetric is the worker's gauge of its settings
// (worker/settings.go), one sample per setting label.
const workerSettingMetric = "sagaflow_worker_setting"

// metricByLabel reads every sample of a Prometheus metric by the value of
// one of its labels; a metric that is absent gives an empty map.
func metricByLabel(r io.Reader, name, label string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "}")
		if !ok {
			return nil, fmt.Errorf("metric %s: %q: no closing brace", name, sc.Text())
		}
		key := ""
		for _, l := range strings.Split(labels, ",") {
			if v, ok := strings.CutPrefix(l, label+"="); ok {
				key = strings.Trim(v, `"`)
			}
		}
		fields := strings.Fields(value)
		if key == "" || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %q: %w", name, sc.Text(), err)
		}
		out[key] = v
	}
	return out, sc.Err()
}

// publishedBy sums published over the worker processes.
func publishedBy(ctx context.Context, procs []*workerProcess) (float64, error) {
	var sum float64
	for _, w := range procs {
		n, err := w.published(ctx)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// peakRSS is the worker's peak resident memory so far, in bytes.
func (w *workerProcess) peakRSS() (int64, error) {
	return procStatusBytes(w.cmd.Process.Pid, "VmHWM")
}

// procStatusBytes reads a kB field of /proc/<pid>/status in bytes.
func procStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return statusBytes(f, field)
}

// stop sends SIGTERM and waits for the graceful exit.
func (w *workerProcess) stop() error {
	return stopProcess(w.cmd, w.done, syscall.SIGTERM, 30*time.Second)
}

// metricSum adds up every sample of a Prometheus metric (all its label
// sets) in the text exposition format.
func metricSum(r io.Reader, name string) (float64, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric whose name starts with this one
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

// statusBytes reads a field in kB (VmHWM, VmRSS) from a /proc/<pid>/status,
// in bytes.
func statusBytes(r io.Reader, field string) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", field, rest)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s not found", field)
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

// saveDebug saves the worker's /debug/pprof/<path> (served with --pprof)
// to file.
func (w *workerProcess) saveDebug(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.HTTPAddr+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("worker /debug/pprof/%s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("worker /debug/pprof/%s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("worker /debug/pprof/%s: %w", path, err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return fmt.Errorf("save /debug/pprof/%s: %w", path, err)
	}
	return nil
}
