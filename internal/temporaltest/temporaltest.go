// Package temporaltest runs integration tests against a real Temporal dev
// server started from the pinned Temporal CLI binary. One server is shared by
// all tests of a test binary because starting it takes seconds; every test
// gets its own worker on a unique task queue so tests never steal each
// other's tasks.
//
// A package opts in from its TestMain:
//
//	func TestMain(m *testing.M) { temporaltest.Main(m) }
//
// With TEMPORAL_TARGET=cluster the shared server is a self-hosted Temporal
// on PostgreSQL instead (internal/temporalcluster: frontend, matching,
// worker and two history hosts as separate processes, built by
// `make temporal-server`), with the same namespace, search attributes and
// dynamic config.
package temporaltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/repo"
	"github.com/sagaflow/sagaflow/internal/temporalcluster"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// CLIVersion is the Temporal CLI release the project pins (see `make temporal`).
const CLIVersion = "v1.5.1"

const howToInstall = "run `make temporal` (installs github.com/temporalio/cli/cmd/temporal@" + CLIVersion + " into ./bin) or set TEMPORAL_CLI"

// DeploymentDynamicConfig is the dynamic config Worker Deployments (Worker
// Versioning) need, as KEY=JSON values of --dynamic-config-value: deployment
// versions and the versioning workflow APIs. Server 1.29 enables both by
// default; they are named so that a server whose defaults differ still
// runs versioned workers. docker-compose.yml's Temporal sets the same.
var DeploymentDynamicConfig = []string{
	"system.enableDeploymentVersions=true",
	"frontend.workerVersioningWorkflowAPIs=true",
}

// FastDrainageDynamicConfig makes a version that is no longer current
// reported drained seconds after its last pinned workflow closed: the
// visibility grace period and the refresh interval are three minutes each
// by default. For tests and the demo, which watch an old build drain.
var FastDrainageDynamicConfig = []string{
	`matching.wv.VersionDrainageStatusVisibilityGracePeriod="5s"`,
	`matching.wv.VersionDrainageStatusRefreshInterval="5s"`,
}

// TargetEnv names the environment variable that picks the shared server:
// TargetDev (or unset) for the dev server, TargetCluster for a self-hosted
// cluster.
const TargetEnv = "TEMPORAL_TARGET"

// The targets of TargetEnv.
const (
	TargetDev     = "dev"
	TargetCluster = "cluster"
)

// Target is the shared server's kind this test binary runs against, from
// TargetEnv: TargetDev or TargetCluster.
func Target() string {
	if os.Getenv(TargetEnv) == TargetCluster {
		return TargetCluster
	}
	return TargetDev
}

// OnCluster reports whether the shared server is a self-hosted cluster.
func OnCluster() bool { return Target() == TargetCluster }

// SkipOnCluster skips a test that needs what only the dev server offers
// (its Web UI, its start-dev flags), saying why, when the shared server is
// a cluster.
func SkipOnCluster(t testing.TB, why string) {
	t.Helper()
	if OnCluster() {
		t.Skipf("%s=%s: %s", TargetEnv, TargetCluster, why)
	}
}

// Frontend is what tests use of the shared server: the dev server
// (*testsuite.DevServer) or a cluster (*temporalcluster.Cluster).
type Frontend interface {
	// FrontendHostPort is the address clients and workers dial.
	FrontendHostPort() string
	// Client is a client of the server in the configured namespace.
	Client() client.Client
}

// Config tunes the shared dev server.
type Config struct {
	// Namespace the server registers and clients use. Default "default".
	Namespace string
	// UIPort enables the Temporal Web UI on this port when non-zero, for
	// browser tests; by default the server runs headless.
	UIPort int
	// UICodecEndpoint is the codec server the Web UI decodes payloads
	// through (--ui-codec-endpoint). Default none.
	UICodecEndpoint string
	// LogLevel of the server process. Default "warn".
	LogLevel string
	// StartTimeout bounds how long the server may take to accept clients.
	// Default 60s.
	StartTimeout time.Duration
	// ServerOutput receives the server's stdout and stderr. Default: discarded
	// unless TEMPORAL_SERVER_LOG=1, in which case it goes to stderr.
	ServerOutput io.Writer
}

func (c *Config) setDefaults() {
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.LogLevel == "" {
		c.LogLevel = "warn"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.ServerOutput == nil {
		c.ServerOutput = io.Discard
		if os.Getenv("TEMPORAL_SERVER_LOG") == "1" {
			c.ServerOutput = os.Stderr
		}
	}
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.UIPort < 0 || c.UIPort > 65535 {
		errs = append(errs, fmt.Errorf("UIPort %d out of range", c.UIPort))
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error", "never":
	default:
		errs = append(errs, fmt.Errorf("LogLevel %q is not one of debug, info, warn, error, never", c.LogLevel))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, errors.New("StartTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// shared is the state of the one server of this test binary.
var shared struct {
	mu       sync.Mutex
	main     bool // Main or MainWith is in charge of stopping the server
	cfg      Config
	started  bool
	server   *testsuite.DevServer
	cluster  *temporalcluster.Cluster
	watchdog *watchdog
	startErr error
	missing  bool // no server binary: tests skip (or fail in CI)
	atExit   []func()
}

// Main runs the package's tests with the default Config and stops the shared
// server, if any test started it, before the process exits.
func Main(m *testing.M) { MainWith(m, Config{}) }

// MainWith is Main with a Config, for example to enable the Web UI.
func MainWith(m *testing.M, cfg Config) {
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "temporaltest:", err)
		os.Exit(2)
	}
	cfg.setDefaults()
	shared.mu.Lock()
	shared.main = true
	shared.cfg = cfg
	shared.mu.Unlock()

	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "temporaltest: stopping dev server:", err)
	}
	shared.mu.Lock()
	atExit := shared.atExit
	shared.mu.Unlock()
	for i := len(atExit) - 1; i >= 0; i-- {
		atExit[i]()
	}
	os.Exit(code)
}

// AtExit registers f to run after every test of the package, when Main
// returns: for resources shared by the tests of one binary.
func AtExit(f func()) {
	shared.mu.Lock()
	shared.atExit = append(shared.atExit, f)
	shared.mu.Unlock()
}

func stop() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster != nil {
		err := shared.cluster.Close()
		shared.cluster = nil
		return err
	}
	if shared.server == nil {
		return nil
	}
	shared.server.Client().Close()
	err := shared.server.Stop()
	shared.watchdog.stop()
	shared.server = nil
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		// The server exits non-zero on interrupt; that is how it stops.
		return nil
	}
	return err
}

// Server returns the shared server, starting it on first use: the dev
// server, or the cluster under TEMPORAL_TARGET=cluster. Without its
// binaries it skips the test (fails it in CI).
func Server(t testing.TB) Frontend {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("temporaltest: call temporaltest.Main(m) from TestMain so the shared dev server is stopped")
	}
	if OnCluster() && shared.cfg.UIPort != 0 {
		t.Skipf("%s=%s: the Web UI comes with the dev server (temporal server start-dev --ui-port); the cluster has none", TargetEnv, TargetCluster)
	}
	if !shared.started {
		shared.started = true
		if OnCluster() {
			shared.cluster, shared.missing, shared.startErr = startCluster(shared.cfg)
		} else {
			shared.server, shared.missing, shared.startErr = start(shared.cfg)
			if shared.server != nil {
				path, _ := CLIPath()
				shared.watchdog = startWatchdog(path)
			}
		}
	}
	if shared.missing {
		if OnCluster() {
			testenv.Unavailable(t, "the Temporal server", temporalcluster.HowToBuild)
		}
		testenv.Unavailable(t, "Temporal CLI", howToInstall)
	}
	if shared.startErr != nil {
		t.Fatalf("temporaltest: %v", shared.startErr)
	}
	if shared.cluster != nil {
		return shared.cluster
	}
	return shared.server
}

// dynamicConfig is every KEY=JSON value the shared server runs with.
func dynamicConfig() []string {
	kvs := []string{
		"matching.numTaskqueueReadPartitions=1",
		"matching.numTaskqueueWritePartitions=1",
	}
	return append(append(kvs, DeploymentDynamicConfig...), FastDrainageDynamicConfig...)
}

// ClusterOptions are the options of the shared cluster: the dev server's
// namespace, search attributes and dynamic config. A test that starts a
// cluster of its own (a fault test) starts from them.
func ClusterOptions(namespace string) temporalcluster.Options {
	if namespace == "" {
		namespace = "default"
	}
	return temporalcluster.Options{
		Namespace:        namespace,
		SearchAttributes: contract.SearchAttributes(),
		DynamicConfig:    dynamicConfig(),
		ClientLogger:     quietLogger{},
	}
}

func startCluster(cfg Config) (*temporalcluster.Cluster, bool, error) {
	c, err := temporalcluster.New(ClusterOptions(cfg.Namespace))
	if errors.Is(err, temporalcluster.ErrNotBuilt) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("start the Temporal cluster: %w", err)
	}
	return c, false, nil
}

// DevServerArgs are the arguments of `temporal server start-dev` that every
// dev server of the tests runs with, the shared one and those a test runs
// of its own: one task queue partition, Worker Deployments, fast drainage
// and the sagas' search attributes.
func DevServerArgs() []string {
	var args []string
	for _, kv := range dynamicConfig() {
		args = append(args, "--dynamic-config-value", kv)
	}
	for _, sa := range contract.SearchAttributes() {
		args = append(args, "--search-attribute", sa)
	}
	return args
}

func start(cfg Config) (*testsuite.DevServer, bool, error) {
	path, ok := CLIPath()
	if !ok {
		return nil, true, nil
	}
	args := DevServerArgs()
	opts := testsuite.DevServerOptions{
		ExistingPath: path,
		ClientOptions: &client.Options{
			Namespace: cfg.Namespace,
			Logger:    quietLogger{},
		},
		LogLevel:  cfg.LogLevel,
		ExtraArgs: args,
		Stdout:    cfg.ServerOutput,
		Stderr:    cfg.ServerOutput,
	}
	if cfg.UIPort != 0 {
		opts.EnableUI = true
		opts.UIPort = fmt.Sprint(cfg.UIPort)
	}
	if cfg.UICodecEndpoint != "" {
		opts.ExtraArgs = append(opts.ExtraArgs, "--ui-codec-endpoint", cfg.UICodecEndpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, opts)
	if err != nil {
		return nil, false, fmt.Errorf("start dev server %s: %w", path, err)
	}
	return srv, false, nil
}

// CLIPath finds the Temporal CLI binary: $TEMPORAL_CLI, then <repo>/bin/temporal
// (the repository root is the nearest directory holding go.mod), then
// `temporal` on PATH, then $(go env GOPATH)/bin/temporal.
func CLIPath() (string, bool) {
	if p := os.Getenv("TEMPORAL_CLI"); p != "" {
		return p, isExecutable(p)
	}
	if root, err := repo.Root(); err == nil {
		if p := filepath.Join(root, "bin", "temporal"); isExecutable(p) {
			return p, true
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, true
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			if p := filepath.Join(dir, "bin", "temporal"); isExecutable(p) {
				return p, true
			}
		}
	}
	return "", false
}

func isExecutable(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

// Client returns the shared server's client. Tests must not close it.
func Client(t testing.TB) client.Client {
	t.Helper()
	return Server(t).Client()
}

var queueSeq atomic.Int64

var unsafeQueueChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// TaskQueue returns a task queue name unique within the server's lifetime,
// readable in the Web UI because it starts with the test's name.
func TaskQueue(t testing.TB) string {
	name := unsafeQueueChars.ReplaceAllString(t.Name(), "-")
	if len(name) > 80 {
		name = name[:80]
	}
	return fmt.Sprintf("%s-%d-%d", name, os.Getpid(), queueSeq.Add(1))
}

// NewWorker starts a worker on a fresh task queue of the shared server with
// the workflows and activities register adds, and stops it when the test
// ends. It returns the server's client and the task queue.
func NewWorker(t testing.TB, register func(worker.Worker)) (client.Client, string) {
	t.Helper()
	return NewWorkerWithOptions(t, worker.Options{}, register)
}

// NewWorkerWithOptions is NewWorker with worker options, for example to raise
// the number of concurrent activities in a benchmark.
func NewWorkerWithOptions(t testing.TB, opts worker.Options, register func(worker.Worker)) (client.Client, string) {
	t.Helper()
	c := Client(t)
	queue := TaskQueue(t)
	w := worker.New(c, queue, opts)
	register(w)
	if err := w.Start(); err != nil {
		t.Fatalf("temporaltest: start worker on %s: %v", queue, err)
	}
	t.Cleanup(w.Stop)
	return c, queue
}

// quietLogger drops the SDK's info and debug chatter so test output shows
// only what failed.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(msg string, kv ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"WARN", msg}, kv...)...)
}
func (quietLogger) Error(msg string, kv ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"ERROR", msg}, kv...)...)
}

var _ log.Logger = quietLogger{}
