// Package temporalcluster runs a self-hosted Temporal server on the local
// PostgreSQL for tests and for `make temporal-cluster`: the release's
// server binary (`make temporal-server`, pinned in tools/temporal-server)
// started as separate processes, one per service — frontend, matching,
// worker and two history hosts — on a fresh pair of databases (persistence
// and visibility) whose schemas the release's SQL tool sets up.
//
// Every process listens on 127.0.0.1 only, on a block of ports of its own
// found free from PortBase upward (and held by a lock file, so two clusters
// started at once never pick the same block). The databases are named
// sagaflowtc_<random> and sagaflowtc_<random>_vis. Close stops the processes
// and drops the databases; Start also does it when the test ends, and a
// watchdog process does it if the test binary dies first.
//
// Single services can be stopped, killed and started again (StopService,
// KillService, StartService) to inject faults; each one's log is at
// Service.LogPath and its Prometheus metrics at Service.MetricsAddr.
package temporalcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/repo"
)

// DefaultPortBase is where the search for a free block of ports starts:
// above the dev servers (7233...), RabbitMQ (5672, 5681-5683) and its
// cluster's distribution ports (25681-25683).
const DefaultPortBase = 27200

// HowToBuild tells how to get the server binaries.
const HowToBuild = "run `make temporal-server` (builds go.temporal.io/server from tools/temporal-server into ./bin) or set TEMPORAL_SERVER and TEMPORAL_SQL_TOOL"

// Options configure a cluster.
type Options struct {
	// ServerPath is the temporal-server binary. Default $TEMPORAL_SERVER,
	// else <repo>/bin/temporal-server.
	ServerPath string
	// SQLToolPath is the temporal-sql-tool binary. Default
	// $TEMPORAL_SQL_TOOL, else <repo>/bin/temporal-sql-tool.
	SQLToolPath string
	// Dir holds the configuration, the logs and the state of the cluster.
	// Default a new temporary directory, removed by Close.
	Dir string
	// Namespace the cluster registers, with SearchAttributes. Default
	// "default".
	Namespace string
	// SearchAttributes are registered in Namespace, as "Name=Type" pairs.
	// Default contract.SearchAttributes(): the sagas'.
	SearchAttributes []string
	// DynamicConfig values, KEY=JSON as the dev server's
	// --dynamic-config-value takes them. Default none.
	DynamicConfig []string
	// HistoryHosts is the number of history processes. Default 2.
	HistoryHosts int
	// Shards is persistence.numHistoryShards. Default 4.
	Shards int
	// PostgresAddr is the PostgreSQL host:port. Default 127.0.0.1:5432.
	PostgresAddr string
	// PostgresUser may create databases. Default "postgres" (the local
	// server trusts it); PostgresPassword is its password, default none.
	PostgresUser, PostgresPassword string
	// Databases names the pair of databases to use: <Databases> and
	// <Databases>_vis. Default sagaflowtc_<random>, created and dropped by
	// the cluster. Named, they are created when missing and kept by Close.
	Databases string
	// PortBase is the first port to try. Default DefaultPortBase.
	PortBase int
	// LogLevel of the server processes. Default "info": the history hosts
	// then log the shards they acquire.
	LogLevel string
	// StartTimeout bounds the start, up to a served frontend with the
	// namespace and its search attributes. Default 3 minutes.
	StartTimeout time.Duration
	// ClientLogger is the SDK logger of Client. Default: discarded.
	ClientLogger log.Logger
	// Detach starts the processes in sessions of their own, without a
	// watchdog, so they outlive the caller (`make temporal-cluster`);
	// Close still stops them.
	Detach bool
}

func (o *Options) setDefaults() error {
	root, rootErr := repo.Root()
	binPath := func(env, name string) (string, error) {
		if p := os.Getenv(env); p != "" {
			return p, nil
		}
		if rootErr != nil {
			return "", rootErr
		}
		return filepath.Join(root, "bin", name), nil
	}
	var err error
	if o.ServerPath == "" {
		if o.ServerPath, err = binPath("TEMPORAL_SERVER", "temporal-server"); err != nil {
			return err
		}
	}
	if o.SQLToolPath == "" {
		if o.SQLToolPath, err = binPath("TEMPORAL_SQL_TOOL", "temporal-sql-tool"); err != nil {
			return err
		}
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.SearchAttributes == nil {
		o.SearchAttributes = contract.SearchAttributes()
	}
	if o.HistoryHosts == 0 {
		o.HistoryHosts = 2
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	if o.PostgresAddr == "" {
		o.PostgresAddr = "127.0.0.1:5432"
	}
	if o.PostgresUser == "" {
		o.PostgresUser = "postgres"
	}
	if o.PortBase == 0 {
		o.PortBase = DefaultPortBase
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 3 * time.Minute
	}
	if o.ClientLogger == nil {
		o.ClientLogger = log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	return nil
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.HistoryHosts < 0 || o.HistoryHosts > 9 {
		errs = append(errs, fmt.Errorf("HistoryHosts %d: want 1 to 9", o.HistoryHosts))
	}
	if o.Shards < 0 {
		errs = append(errs, fmt.Errorf("Shards %d must not be negative", o.Shards))
	}
	if o.PortBase != 0 && (o.PortBase < 1024 || o.PortBase > 60000) {
		errs = append(errs, fmt.Errorf("PortBase %d: want 1024 to 60000", o.PortBase))
	}
	switch o.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LogLevel %q is not one of debug, info, warn, error", o.LogLevel))
	}
	if o.Databases != "" && !validDBName(o.Databases) {
		errs = append(errs, fmt.Errorf("Databases %q: want lower-case letters, digits and '_', starting with a letter, at most 40", o.Databases))
	}
	for _, sa := range o.SearchAttributes {
		if name, typ, ok := strings.Cut(sa, "="); !ok || name == "" || typ == "" {
			errs = append(errs, fmt.Errorf("search attribute %q: want Name=Type", sa))
		}
	}
	return errors.Join(errs...)
}

func validDBName(s string) bool {
	if len(s) == 0 || len(s) > 40 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// Service is one server process of the cluster.
type Service struct {
	// Name is unique in the cluster: "frontend", "matching", "worker",
	// "history-1", "history-2", ...
	Name string
	// Role is its --service.
	Role Role
	// Ports it listens on (HTTP: the frontend only).
	Ports Ports
	// LogPath is its combined output, appended to by every start.
	LogPath string
	// MetricsAddr serves its Prometheus metrics.
	MetricsAddr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Running reports whether the process is up (started and not exited).
func (s *Service) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Pid is the process id of its latest start, 0 before any.
func (s *Service) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Cluster is a running self-hosted Temporal server.
type Cluster struct {
	opts      Options
	dir       string
	ownDir    bool
	db, visDB string
	ownDBs    bool
	lock      *os.File
	services  []*Service
	client    client.Client
	watchdog  *exec.Cmd
	closeOnce sync.Once
	closeErr  error
}

// Start starts a cluster for a test and closes it when the test ends.
// Without the server binaries it skips the test, or fails it in CI.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := New(opts)
	if errors.Is(err, ErrNotBuilt) {
		unavailable(t, err)
	}
	if err != nil {
		t.Fatalf("temporalcluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range c.services {
				t.Logf("temporalcluster: %s log: %s", s.Name, s.LogPath)
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("temporalcluster: %v", err)
		}
	})
	return c
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("temporalcluster: required in CI: %v", err)
	}
	t.Skipf("temporalcluster: %v", err)
}

// ErrNotBuilt is returned by New when a server binary is missing.
var ErrNotBuilt = errors.New("the Temporal server binaries are not built: " + HowToBuild)

// New starts a cluster: databases, schemas, configuration, processes,
// namespace and search attributes. The caller must Close it.
func New(opts Options) (*Cluster, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	for _, p := range []string{opts.ServerPath, opts.SQLToolPath} {
		if info, err := os.Stat(p); err != nil || info.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("%w (%s)", ErrNotBuilt, p)
		}
	}
	c := &Cluster{opts: opts, dir: opts.Dir}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "sagaflow-temporalcluster-")
		if err != nil {
			return nil, err
		}
		c.dir, c.ownDir = dir, true
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	// The processes run in it and resolve their paths against it.
	abs, err := filepath.Abs(c.dir)
	if err != nil {
		return nil, err
	}
	c.dir = abs
	if err := c.start(); err != nil {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.StartTimeout)
	defer cancel()
	if c.opts.Databases != "" {
		c.db = c.opts.Databases
	} else {
		c.db, c.ownDBs = "sagaflowtc_"+randomHex(6), true
	}
	c.visDB = c.db + "_vis"
	base, lock, err := reservePorts(c.opts.PortBase, 2+2+c.opts.HistoryHosts)
	if err != nil {
		return err
	}
	c.lock = lock
	c.layout(base)
	if !c.opts.Detach {
		// Before the databases exist, so that they never outlive us.
		if err := c.startWatchdog(); err != nil {
			return err
		}
	}
	if err := c.setUpDatabases(ctx); err != nil {
		return err
	}
	if err := c.writeConfigs(); err != nil {
		return err
	}
	// The frontend first: every process writes the cluster's metadata
	// into a fresh database on start, and processes that race there fail.
	// Once one of them serves, the others only read it.
	for i, group := range [][]*Service{c.services[:1], c.services[1:]} {
		for _, s := range group {
			if err := c.spawn(s); err != nil {
				return err
			}
		}
		for _, s := range group {
			if err := c.waitListening(ctx, s); err != nil {
				return fmt.Errorf("start group %d: %w", i+1, err)
			}
		}
	}
	if err := c.dial(ctx); err != nil {
		return err
	}
	return c.register(ctx)
}

// layout assigns the processes their names and ports from base.
func (c *Cluster) layout(base int) {
	add := func(name string, role Role) {
		p := portsAt(base + len(c.services)*portsPerProcess)
		c.services = append(c.services, &Service{
			Name: name, Role: role, Ports: p,
			LogPath:     filepath.Join(c.dir, name+".log"),
			MetricsAddr: fmt.Sprintf("127.0.0.1:%d", p.Metrics),
		})
	}
	add("frontend", RoleFrontend)
	for i := 1; i <= c.opts.HistoryHosts; i++ {
		add(fmt.Sprintf("history-%d", i), RoleHistory)
	}
	add("matching", RoleMatching)
	add("worker", RoleWorker)
}

func (c *Cluster) writeConfigs() error {
	dyn := filepath.Join(c.dir, "dynamicconfig.yaml")
	if err := writeDynamicConfig(dyn, c.opts.DynamicConfig); err != nil {
		return err
	}
	first := map[Role]Ports{}
	for _, s := range c.services {
		if _, ok := first[s.Role]; !ok {
			first[s.Role] = s.Ports
		}
	}
	pgPassword := c.opts.PostgresPassword
	for _, s := range c.services {
		d := configData{
			Process: s.Name, LogLevel: c.opts.LogLevel, Shards: c.opts.Shards, MaxConns: maxConns(s.Role),
			DB: c.db, VisibilityDB: c.visDB,
			PGAddr: c.opts.PostgresAddr, PGUser: c.opts.PostgresUser, PGPassword: pgPassword,
			Own:      s.Ports,
			Frontend: first[RoleFrontend], Matching: first[RoleMatching], History: first[RoleHistory], Worker: first[RoleWorker],
			DynamicConfig: dyn,
		}
		// A history host's own ports are its history service's.
		if s.Role == RoleHistory {
			d.History = s.Ports
		}
		if err := writeConfig(c.dir, d); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts the service's process without waiting for it to serve.
func (c *Cluster) spawn(s *Service) error {
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.opts.ServerPath, "--root", c.dir, "--config", ".", "--env", s.Name,
		"--allow-no-auth", "start", "--service", string(s.Role))
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if c.opts.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.err = cmd, done, nil
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()
	return c.writePids()
}

// writePids records the running processes' ids for the watchdog and for
// `make temporal-cluster-stop`.
func (c *Cluster) writePids() error {
	var b strings.Builder
	for _, s := range c.services {
		if pid := s.Pid(); pid != 0 && s.Running() {
			fmt.Fprintf(&b, "%d %s\n", pid, s.Name)
		}
	}
	tmp := filepath.Join(c.dir, "pids.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.dir, "pids"))
}

// waitListening waits until the service accepts connections on its gRPC
// port (the worker service, which serves no gRPC, on its membership
// port), or fails with the tail of its log if it exits first.
func (c *Cluster) waitListening(ctx context.Context, s *Service) error {
	port := s.Ports.GRPC
	if s.Role == RoleWorker {
		port = s.Ports.Membership
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		s.mu.Lock()
		done, err := s.done, s.err
		s.mu.Unlock()
		select {
		case <-done:
			s.mu.Lock()
			err = s.err
			s.mu.Unlock()
			return fmt.Errorf("%s exited while starting: %v\n%s", s.Name, err, Tail(s.LogPath, 30))
		default:
		}
		conn, derr := net.DialTimeout("tcp", addr, time.Second)
		if derr == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not listen on %s: %w\n%s", s.Name, addr, ctx.Err(), Tail(s.LogPath, 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FrontendHostPort is the address clients and workers use
// (TEMPORAL_ADDRESS).
func (c *Cluster) FrontendHostPort() string {
	return fmt.Sprintf("127.0.0.1:%d", c.Service("frontend").Ports.GRPC)
}

// Namespace is the namespace the cluster registered.
func (c *Cluster) Namespace() string { return c.opts.Namespace }

// Client is a client of the frontend in Namespace. Callers must not close it.
func (c *Cluster) Client() client.Client { return c.client }

// Databases are the persistence and the visibility databases.
func (c *Cluster) Databases() (persistence, visibility string) { return c.db, c.visDB }

// Dir holds the configuration (<service>.yaml, dynamicconfig.yaml) and the
// logs.
func (c *Cluster) Dir() string { return c.dir }

// Services are the processes, the frontend first.
func (c *Cluster) Services() []*Service { return append([]*Service(nil), c.services...) }

// Service returns the process of that name, nil if there is none.
func (c *Cluster) Service(name string) *Service {
	for _, s := range c.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ServicesOf returns the processes of a role.
func (c *Cluster) ServicesOf(role Role) []*Service {
	var out []*Service
	for _, s := range c.services {
		if s.Role == role {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) mustService(name string) (*Service, error) {
	s := c.Service(name)
	if s == nil {
		return nil, fmt.Errorf("no service %q in the cluster", name)
	}
	return s, nil
}

// KillService ends a process with SIGKILL, as a crash would, and waits for
// it to be gone.
func (c *Cluster) KillService(name string) error {
	s, err := c.mustService(name)
	if err != nil {
		return err
	}
	return c.signal(s, syscall.SIGKILL, 30*time.Second)
}

// StopService stops a process with SIGTERM (a graceful stop: a history
// host hands its shards over) and waits for it, killing it after a minute.
func (c *Cluster) StopService(name string) error {
	s, err := c.mustService(name)
	if err != nil {
		return err
	}
	if err := c.signal(s, syscall.SIGTERM, time.Minute); err != nil {
		return c.signal(s, syscall.SIGKILL, 30*time.Second)
	}
	return nil
}

func (c *Cluster) signal(s *Service, sig syscall.Signal, wait time.Duration) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || !s.Running() {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		return fmt.Errorf("%s still runs %s after %v", s.Name, wait, sig)
	}
	return c.writePids()
}

// StartService starts a stopped process again and waits until it listens.
func (c *Cluster) StartService(ctx context.Context, name string) error {
	s, err := c.mustService(name)
	if err != nil {
		return err
	}
	if s.Running() {
		return fmt.Errorf("%s already runs", name)
	}
	if err := c.spawn(s); err != nil {
		return err
	}
	return c.waitListening(ctx, s)
}

// RestartService stops a process gracefully and starts it again.
func (c *Cluster) RestartService(ctx context.Context, name string) error {
	if err := c.StopService(name); err != nil {
		return err
	}
	return c.StartService(ctx, name)
}

// Close stops every process, drops the databases the cluster created and
// removes its temporary directory. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		if c.client != nil {
			c.client.Close()
		}
		var wg sync.WaitGroup
		for _, s := range c.services {
			wg.Go(func() {
				if err := c.signal(s, syscall.SIGTERM, 20*time.Second); err != nil {
					_ = c.signal(s, syscall.SIGKILL, 20*time.Second)
				}
			})
		}
		wg.Wait()
		if c.ownDBs && c.db != "" {
			for _, db := range []string{c.db, c.visDB} {
				if err := c.sqlTool(context.Background(), db, "drop-database", "--defaultdb", "postgres", "-f"); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if c.watchdog != nil && c.watchdog.Process != nil {
			_ = c.watchdog.Process.Kill()
		}
		if c.lock != nil {
			_ = c.lock.Close()
		}
		if c.ownDir {
			_ = os.RemoveAll(c.dir)
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(data), n)
}
