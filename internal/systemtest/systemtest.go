// Package systemtest runs the whole system for end-to-end and fault tests:
// the shared Temporal dev server (internal/temporaltest), a RabbitMQ virtual
// host of the test's own, and worker processes built from ./worker with every
// part (services on SQLite, workflows, replies, bridge, projection,
// notifications). Options.Topology runs the production topology instead: the
// vhost on a RabbitMQ cluster (internal/rmqcluster) with quorum queues, the
// services on PostgreSQL, and separate orchestration and services workers.
// Faults are real: connections dropped with rabbitmqctl, the broker
// restarted, cluster nodes stopped or killed, worker processes killed,
// activities failed by workers built with the tag faults
// (Options.ActivityFaults).
//
// A package using it calls Main from TestMain.
package systemtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/faults"
	"github.com/sagaflow/sagaflow/internal/repo"
	"github.com/sagaflow/sagaflow/internal/rmqcluster"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// Main runs the package's tests and then stops the shared dev server and
// removes the worker binary.
func Main(m *testing.M) { temporaltest.Main(m) }

// builds holds the worker binaries built so far, one per set of build tags.
var builds struct {
	mu    sync.Mutex
	byTag map[string]*workerBuild
}

type workerBuild struct {
	once sync.Once
	path string
	err  error
}

// workerBinary builds ./worker with the given build tags (comma-separated,
// or empty) once per test binary.
func workerBinary(t testing.TB, tags string) string {
	t.Helper()
	builds.mu.Lock()
	if builds.byTag == nil {
		builds.byTag = map[string]*workerBuild{}
	}
	b, ok := builds.byTag[tags]
	if !ok {
		b = &workerBuild{}
		builds.byTag[tags] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() {
		root, err := repo.Root()
		if err != nil {
			b.err = err
			return
		}
		dir, err := os.MkdirTemp("", "sagaflow-systemtest-")
		if err != nil {
			b.err = err
			return
		}
		temporaltest.AtExit(func() { _ = os.RemoveAll(dir) })
		b.path = filepath.Join(dir, "worker")
		args := []string{"build", "-o", b.path}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command("go", append(args, "./worker")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s ./worker: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

// Options configure a System.
type Options struct {
	// WorkerEnv adds KEY=VALUE environment entries to every worker process.
	WorkerEnv []string
	// ActivityFaults, when enabled, makes the workers fail activities at
	// random. They are then built with the tag faults: a worker built
	// without it cannot inject faults.
	ActivityFaults faults.Config
	// Exchange is the event exchange of the system: the test's connection
	// declares it and every worker gets it as AMQP_EXCHANGE. Default
	// amqp.DefaultExchange.
	Exchange string
	// Deployment, when set, runs the workers under Temporal Worker
	// Versioning as versions of this Worker Deployment; the deployment
	// name must be unique on the shared dev server (the test's own).
	// Default: unversioned workers.
	Deployment string
	// BuildID is the build id of the workers Start and StartWorker start
	// when Deployment is set (required then: the test binary's workers
	// carry no VCS stamp to default to). StartWorkerWith starts another
	// build.
	BuildID string
	// Topology, when set, runs the production topology: the system's vhost
	// on a RabbitMQ cluster, the services on PostgreSQL and separate
	// orchestration and services workers. Default: one worker with every
	// part, on the broker at testenv.AMQPURL with SQLite.
	Topology *Topology
	// Temporal, when set, is the Temporal server of the system, for
	// example a cluster of the test's own (internal/temporalcluster) to
	// inject faults into. Default the test binary's shared server
	// (temporaltest.Server).
	Temporal temporaltest.Frontend
	// Broker, when set, is a broker of the test's own (a one-node
	// rmqcluster) that the default system (one worker, SQLite) runs on
	// instead of the machine's at testenv.AMQPURL, so that stopping it
	// (StopBroker, RestartBroker) disturbs no other test. Ignored under
	// Topology.
	Broker *rmqcluster.Cluster
	// Postgres runs the services of the single worker on PostgreSQL (a
	// schema of the test's own per database at testenv.PostgresDSN, as
	// under Topology) instead of SQLite. Topology always does.
	Postgres bool
	// TemporalAddress and TemporalClient, when set, are a Temporal server
	// of the test's own (one it kills and restarts) instead of the shared
	// dev server. Set both or neither.
	TemporalAddress string
	TemporalClient  client.Client
	// WorkerNetwork, when set, gives each worker process another broker
	// URL list and Temporal address than the test's: the same ones
	// through a TCP proxy of the test, which then degrades the workers'
	// network without touching the test's own connections.
	WorkerNetwork func(amqpURL, temporalAddress string) (string, string)
}

// WorkerOptions configure one worker process of StartWorkerWith.
type WorkerOptions struct {
	// BuildID is the worker's build id under Options.Deployment. Default
	// Options.BuildID.
	BuildID string
	// Run is the worker's --run: RunOrchestration, RunServices or a list
	// of parts. Default every part.
	Run string
}

// System is one isolated deployment of the project for a test.
type System struct {
	// VHost is the test's RabbitMQ virtual host.
	VHost string
	// AMQPURL reaches the broker in VHost.
	AMQPURL string
	// Exchange is the event exchange in VHost.
	Exchange string
	// Temporal is a client of the shared dev server (or of
	// Options.TemporalClient's).
	Temporal client.Client
	// TemporalAddress is the dev server's frontend host:port.
	TemporalAddress string
	// TaskQueue is the test's own task queue.
	TaskQueue string
	// Dir holds the services' SQLite files (without Options.Topology) and
	// the workers' logs.
	Dir string
	// Conn is the test's own broker connection in VHost.
	Conn *amqp.Conn
	// Publisher publishes with confirms on Conn.
	Publisher *amqp.Publisher
	// Requester sends commands and queries on Conn.
	Requester *amqp.Requester

	t    testing.TB
	opts Options
	bin  string
	// nodeURLs are the cluster nodes' URLs in VHost, under Options.Topology.
	nodeURLs []string
	// dsns are the services' databases by service name.
	dsns    map[string]string
	mu      sync.Mutex
	workers []*Worker
}

// Start creates the virtual host, connects to it and to Temporal, and starts
// one worker process, returning once the worker reports healthy (every
// consumer consuming). Everything is torn down when the test ends.
func Start(t testing.TB, opts Options) *System {
	t.Helper()
	if opts.Deployment != "" && opts.BuildID == "" {
		t.Fatal("systemtest: Options.Deployment needs Options.BuildID")
	}
	if err := opts.Topology.validate(); err != nil {
		t.Fatal(err)
	}
	if (opts.TemporalAddress == "") != (opts.TemporalClient == nil) {
		t.Fatal("systemtest: set both Options.TemporalAddress and Options.TemporalClient, or neither")
	}
	if opts.Temporal != nil && opts.TemporalClient != nil {
		t.Fatal("systemtest: set Options.Temporal or Options.TemporalAddress and TemporalClient, not both")
	}
	if opts.Temporal != nil {
		opts.TemporalClient, opts.TemporalAddress = opts.Temporal.Client(), opts.Temporal.FrontendHostPort()
	}
	s := &System{
		t:               t,
		opts:            opts,
		bin:             workerBinary(t, opts.workerTags()),
		Temporal:        opts.TemporalClient,
		TemporalAddress: opts.TemporalAddress,
		TaskQueue:       temporaltest.TaskQueue(t),
		Dir:             t.TempDir(),
	}
	if s.Temporal == nil {
		srv := temporaltest.Server(t)
		s.Temporal, s.TemporalAddress = srv.Client(), srv.FrontendHostPort()
	}
	s.VHost = "sagaflow-system-" + uuid.NewString()[:8]
	if opts.Topology != nil {
		s.startOnCluster()
	} else {
		s.startOnBroker()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	s.Conn, err = amqp.Dial(ctx, amqp.Config{URL: s.AMQPURL, ConnectionName: "systemtest " + t.Name(), Exchange: opts.Exchange})
	require.NoError(t, err)
	s.Exchange = s.Conn.Config().Exchange
	t.Cleanup(func() { _ = s.Conn.Close() })
	s.Publisher, err = s.Conn.NewPublisher(amqp.PublisherConfig{})
	require.NoError(t, err)
	s.Requester, err = s.Conn.NewRequester(amqp.RequesterConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Requester.Close(); _ = s.Publisher.Close() })
	// Workers stop before the connections and the vhost go (cleanups run
	// last-in first-out).
	t.Cleanup(s.stopWorkers)
	if opts.Topology != nil {
		s.startTopologyWorkers()
	} else {
		s.StartWorker()
	}
	return s
}

// startOnBroker creates the vhost on the broker at testenv.AMQPURL and
// lays out the services' SQLite files.
func (s *System) startOnBroker() {
	t := s.t
	t.Helper()
	var base string
	if b := s.opts.Broker; b != nil {
		base = b.URLs()[0]
	} else {
		base = testenv.AMQPURL(t)
		if _, err := exec.LookPath("rabbitmqctl"); err != nil {
			testenv.Unavailable(t, "rabbitmqctl", "install RabbitMQ's CLI tools and put rabbitmqctl on PATH")
		}
	}
	s.ctl("add_vhost", s.VHost)
	t.Cleanup(func() { _, _ = s.ctlOut("delete_vhost", s.VHost) })
	u, err := url.Parse(base)
	require.NoError(t, err)
	s.ctl("set_permissions", "-p", s.VHost, u.User.Username(), ".*", ".*", ".*")
	u.Path = "/" + s.VHost
	s.AMQPURL = u.String()
	s.dsns = map[string]string{}
	for _, name := range serviceDatabases {
		s.dsns[name] = filepath.Join(s.Dir, name+".db")
		if s.opts.Postgres {
			s.dsns[name] = storetest.DSN(t, store.Postgres)
		}
	}
}

// workerTags are the build tags of the workers.
func (o Options) workerTags() string {
	if o.ActivityFaults.Enabled() {
		return "faults"
	}
	return ""
}

// ctl runs rabbitmqctl on the system's broker (Options.Broker's node, or
// the machine's) and fails the test when it fails.
func (s *System) ctl(args ...string) {
	s.t.Helper()
	out, err := s.ctlOut(args...)
	require.NoError(s.t, err, "rabbitmqctl %v: %s", args, out)
}

// ctlOut runs rabbitmqctl on the system's broker and returns its output.
func (s *System) ctlOut(args ...string) (string, error) {
	if s.opts.Broker != nil {
		return s.opts.Broker.Ctl(args...)
	}
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	return string(out), err
}

// Worker is one worker process.
type Worker struct {
	// HTTPAddr serves its /metrics and /healthz.
	HTTPAddr string
	// LogPath is its combined output.
	LogPath string
	// BuildID is its build id within Options.Deployment; empty for an
	// unversioned worker.
	BuildID string
	// Run is its --run; empty for every part.
	Run string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartWorker starts another worker process with every part and waits until
// it is healthy.
func (s *System) StartWorker() *Worker {
	s.t.Helper()
	return s.StartWorkerWith(WorkerOptions{})
}

// StartWorkerWith is StartWorker with options, for example another build
// of a versioned system (a rolling deploy). A versioned worker is healthy
// once the dev server lists its version in the deployment.
func (s *System) StartWorkerWith(o WorkerOptions) *Worker {
	s.t.Helper()
	if o.BuildID == "" {
		o.BuildID = s.opts.BuildID
	}
	if s.opts.Deployment == "" && o.BuildID != "" {
		s.t.Fatal("systemtest: a build id needs Options.Deployment")
	}
	w := s.spawnWorker(o)
	s.waitHealthy(w)
	return w
}

// spawnWorker starts a worker process without waiting for it.
func (s *System) spawnWorker(o WorkerOptions) *Worker {
	s.t.Helper()
	if o.BuildID == "" {
		o.BuildID = s.opts.BuildID
	}
	s.mu.Lock()
	n := len(s.workers) + 1
	s.mu.Unlock()
	addr := freeAddr(s.t)
	w := &Worker{HTTPAddr: addr, LogPath: filepath.Join(s.Dir, fmt.Sprintf("worker-%d.log", n)), BuildID: o.BuildID, Run: o.Run, done: make(chan struct{})}
	logFile, err := os.OpenFile(w.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(s.t, err)
	amqpURL, temporalAddress := s.workerAMQPURL(n), s.TemporalAddress
	if s.opts.WorkerNetwork != nil {
		amqpURL, temporalAddress = s.opts.WorkerNetwork(amqpURL, temporalAddress)
	}
	w.cmd = exec.Command(s.bin)
	w.cmd.Env = append(os.Environ(),
		"AMQP_URL="+amqpURL,
		"AMQP_EXCHANGE="+s.Exchange,
		"TEMPORAL_ADDRESS="+temporalAddress,
		"TEMPORAL_NAMESPACE=default",
		"TEMPORAL_TASK_QUEUE="+s.TaskQueue,
		"LEDGER_DSN="+s.DSN(ServiceLedger),
		"INVENTORY_DSN="+s.DSN(ServiceInventory),
		"ORDERS_DSN="+s.DSN(ServiceOrders),
		"METRICS_ADDR="+addr,
		"LOG_FORMAT=json",
		"LOG_LEVEL=warn",
		"SHUTDOWN_GRACE=10s",
	)
	if s.opts.ActivityFaults.Enabled() {
		w.cmd.Env = append(w.cmd.Env, faults.EnvVar+"="+s.opts.ActivityFaults.String())
	}
	if s.opts.Deployment != "" {
		w.cmd.Env = append(w.cmd.Env, "TEMPORAL_DEPLOYMENT_NAME="+s.opts.Deployment, "TEMPORAL_BUILD_ID="+o.BuildID)
	} else {
		// Unversioned, whatever the test's own environment says.
		w.cmd.Env = append(w.cmd.Env, "TEMPORAL_DEPLOYMENT_NAME=")
	}
	if o.Run != "" {
		w.cmd.Env = append(w.cmd.Env, "WORKER_RUN="+o.Run)
	} else {
		w.cmd.Env = append(w.cmd.Env, "WORKER_RUN=all")
	}
	w.cmd.Env = append(w.cmd.Env, s.opts.WorkerEnv...)
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	require.NoError(s.t, w.cmd.Start())
	go func() {
		w.err = w.cmd.Wait()
		_ = logFile.Close()
		close(w.done)
	}()
	s.mu.Lock()
	s.workers = append(s.workers, w)
	s.mu.Unlock()
	return w
}

// Workers returns the worker processes started so far, the first one
// first, running or not.
func (s *System) Workers() []*Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Worker(nil), s.workers...)
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// waitHealthy polls the worker's /healthz: the process offers no other
// signal that its consumers are consuming.
func (s *System) waitHealthy(w *Worker) {
	s.t.Helper()
	if err := s.healthyWithin(w); err != nil {
		s.t.Fatal(err)
	}
}

// healthyWithin waits up to a minute for the worker to report healthy.
func (s *System) healthyWithin(w *Worker) error {
	deadline := time.Now().Add(60 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-w.done:
			return fmt.Errorf("worker %s exited while starting: %v\n%s", w.LogPath, w.err, tail(w.LogPath, 40))
		default:
		}
		resp, err := c.Get("http://" + w.HTTPAddr + "/healthz")
		if err == nil {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = body.String()
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("worker %s not healthy after 60s: %s\n%s", w.LogPath, last, tail(w.LogPath, 40))
}

// Kill ends the worker with SIGKILL, as a crash would, and waits for it.
func (w *Worker) Kill() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// Stop sends SIGTERM and waits for a graceful exit; it returns the exit error.
func (w *Worker) Stop() error {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
		return w.err
	case <-time.After(60 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
		return errors.New("worker did not stop within 60s of SIGTERM")
	}
}

// Exited reports whether the worker process has ended.
func (w *Worker) Exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (s *System) stopWorkers() {
	s.mu.Lock()
	workers := s.workers
	s.mu.Unlock()
	for _, w := range workers {
		if !w.Exited() {
			if err := w.Stop(); err != nil {
				s.t.Logf("worker stop: %v", err)
			}
		}
		if s.t.Failed() {
			s.t.Logf("worker log %s (tail):\n%s", w.LogPath, tail(w.LogPath, 60))
		}
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// DropConnections closes every broker connection of the virtual host, the
// workers' and the test's own, as a network failure would.
func (s *System) DropConnections() {
	s.t.Helper()
	if s.opts.Topology != nil {
		out, err := s.opts.Topology.Cluster.Ctl("close_all_connections", "-p", s.VHost, "systemtest: connections dropped on purpose")
		require.NoError(s.t, err, "close_all_connections: %s", out)
		return
	}
	s.ctl("close_all_connections", "-p", s.VHost, "systemtest: connections dropped on purpose")
}

// RestartBroker stops and starts the RabbitMQ application. Unlike
// DropConnections it affects every client of the broker, so tests using it
// on the machine's broker (without Options.Broker) must not run beside
// other packages' broker tests.
func (s *System) RestartBroker() {
	s.t.Helper()
	s.StopBroker()
	s.StartBroker()
}

// StopBroker stops the RabbitMQ application (`rabbitmqctl stop_app`): every
// connection closes and new ones are refused until StartBroker. The
// queues and their persistent messages survive.
func (s *System) StopBroker() {
	s.t.Helper()
	if s.opts.Topology != nil {
		s.t.Fatal("systemtest: StopBroker stops the system's single broker; on a cluster act on Topology.Cluster's nodes")
	}
	if s.opts.Broker != nil {
		require.NoError(s.t, s.opts.Broker.Node(0).StopApp())
		return
	}
	s.ctl("stop_app")
}

// StartBroker starts the RabbitMQ application StopBroker stopped and
// waits until it runs.
func (s *System) StartBroker() {
	s.t.Helper()
	if s.opts.Topology != nil {
		s.t.Fatal("systemtest: StartBroker starts the system's single broker; on a cluster act on Topology.Cluster's nodes")
	}
	if s.opts.Broker != nil {
		require.NoError(s.t, s.opts.Broker.Node(0).StartApp())
	} else {
		s.ctl("start_app")
	}
	s.ctl("await_startup")
}

// Send sends a command or query to a service queue and returns its reply. A
// request that cannot be delivered yet (the broker is reconnecting) is
// retried until ctx ends.
func (s *System) Send(ctx context.Context, queue, typ string, payload events.Payload, opts ...events.Option) (events.Reply, error) {
	env, err := events.New(typ, "systemtest", payload, opts...)
	if err != nil {
		return events.Reply{}, err
	}
	m, err := amqp.MessageFromEnvelope("", env)
	if err != nil {
		return events.Reply{}, err
	}
	m.RoutingKey = queue
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := s.Requester.Request(attemptCtx, queue, m)
		cancel()
		if err == nil {
			_, reply, err := events.DecodeAs[events.Reply](d.Body)
			return reply, err
		}
		if ctx.Err() != nil {
			return events.Reply{}, fmt.Errorf("%s to %s: %w", typ, queue, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MustAccept sends a command and fails the test unless it is accepted.
func (s *System) MustAccept(ctx context.Context, queue, typ string, payload events.Payload) events.Reply {
	s.t.Helper()
	r, err := s.Send(ctx, queue, typ, payload)
	require.NoError(s.t, err)
	require.True(s.t, r.Accepted(), "%s rejected: %s %s", typ, r.Reason, r.Message)
	return r
}

// PublishEvent publishes an event on the system's exchange, retrying while
// the broker is unreachable.
func (s *System) PublishEvent(ctx context.Context, env events.Envelope) error {
	m, err := amqp.MessageFromEnvelope(s.Exchange, env)
	if err != nil {
		return err
	}
	return s.Publisher.Publish(ctx, m)
}
