package systemtest

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/rmqcluster"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// The --run groups of the production topology's two kinds of worker.
const (
	// RunOrchestration runs the workflows, their activities and replies,
	// and the bridge: the parts that use Temporal.
	RunOrchestration = "orchestration"
	// RunServices runs the ledger and inventory services with their outbox
	// relays, the orders read model and notifications.
	RunServices = "services"
)

// The services' databases, the names System.DSN takes.
const (
	ServiceLedger    = "ledger"
	ServiceInventory = "inventory"
	ServiceOrders    = "orders"
)

var serviceDatabases = []string{ServiceLedger, ServiceInventory, ServiceOrders}

// Topology is the production topology (Options.Topology): a RabbitMQ
// cluster with quorum queues, the services on PostgreSQL (a schema of the
// test's own per database at testenv.PostgresDSN, the relays of the
// services workers competing for its outbox), and separate orchestration
// and services workers, each given the cluster's nodes in another order so
// that their connections spread over the nodes.
type Topology struct {
	// Cluster is the RabbitMQ cluster; the system's vhost is created on it
	// and deleted at the end, so several systems may share one cluster.
	// Required.
	Cluster *rmqcluster.Cluster
	// Orchestration is the number of `worker --run orchestration`
	// processes Start starts. Default 2.
	Orchestration int
	// Services is the number of `worker --run services` processes Start
	// starts. Default 2.
	Services int
}

func (tp *Topology) validate() error {
	if tp == nil {
		return nil
	}
	var errs []error
	if tp.Cluster == nil {
		errs = append(errs, errors.New("systemtest: Topology.Cluster is required"))
	}
	if tp.Orchestration < 0 || tp.Services < 0 {
		errs = append(errs, errors.New("systemtest: Topology worker counts must not be negative"))
	}
	return errors.Join(errs...)
}

func (tp *Topology) orchestration() int {
	if tp.Orchestration == 0 {
		return 2
	}
	return tp.Orchestration
}

func (tp *Topology) services() int {
	if tp.Services == 0 {
		return 2
	}
	return tp.Services
}

// startOnCluster creates the vhost on the cluster and a PostgreSQL schema
// per service database.
func (s *System) startOnCluster() {
	t := s.t
	t.Helper()
	c := s.opts.Topology.Cluster
	out, err := c.Ctl("add_vhost", s.VHost)
	require.NoError(t, err, "add_vhost: %s", out)
	t.Cleanup(func() { _, _ = c.Ctl("delete_vhost", s.VHost) })
	for _, raw := range c.URLs() {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		if s.nodeURLs == nil {
			out, err := c.Ctl("set_permissions", "-p", s.VHost, u.User.Username(), ".*", ".*", ".*")
			require.NoError(t, err, "set_permissions: %s", out)
		}
		u.Path = "/" + s.VHost
		s.nodeURLs = append(s.nodeURLs, u.String())
	}
	s.AMQPURL = strings.Join(s.nodeURLs, ",")
	s.dsns = map[string]string{}
	for _, name := range serviceDatabases {
		s.dsns[name] = storetest.DSN(t, store.Postgres)
	}
}

// startTopologyWorkers starts the services and orchestration workers at
// once and waits until every one is healthy.
func (s *System) startTopologyWorkers() {
	s.t.Helper()
	var ws []*Worker
	for range s.opts.Topology.services() {
		ws = append(ws, s.spawnWorker(WorkerOptions{Run: RunServices}))
	}
	for range s.opts.Topology.orchestration() {
		ws = append(ws, s.spawnWorker(WorkerOptions{Run: RunOrchestration}))
	}
	var wg sync.WaitGroup
	failed := make(chan string, len(ws))
	for _, w := range ws {
		wg.Go(func() {
			if err := s.healthyWithin(w); err != nil {
				failed <- err.Error()
			}
		})
	}
	wg.Wait()
	close(failed)
	for msg := range failed {
		s.t.Error(msg)
	}
	if s.t.Failed() {
		s.t.FailNow()
	}
}

// workerAMQPURL is the AMQP_URL of the n-th worker (from 1): on a cluster
// the node list rotated by n, so that the workers start on different
// nodes.
func (s *System) workerAMQPURL(n int) string {
	if len(s.nodeURLs) == 0 {
		return s.AMQPURL
	}
	k := n % len(s.nodeURLs)
	return strings.Join(slices.Concat(s.nodeURLs[k:], s.nodeURLs[:k]), ",")
}

// DSN returns the database of a service (ServiceLedger, ServiceInventory,
// ServiceOrders) that the workers use: a SQLite file in Dir, or under
// Options.Topology a postgres:// DSN.
func (s *System) DSN(service string) string {
	dsn, ok := s.dsns[service]
	if !ok {
		s.t.Fatalf("systemtest: no database %q (want %s)", service, strings.Join(serviceDatabases, ", "))
	}
	return dsn
}

// Cluster returns the RabbitMQ cluster of Options.Topology, or nil.
func (s *System) Cluster() *rmqcluster.Cluster {
	if s.opts.Topology == nil {
		return nil
	}
	return s.opts.Topology.Cluster
}

// WorkersRunning returns the worker processes that run now, optionally
// only those of one --run (RunOrchestration, RunServices).
func (s *System) WorkersRunning(run string) []*Worker {
	var out []*Worker
	for _, w := range s.Workers() {
		if !w.Exited() && (run == "" || w.Run == run) {
			out = append(out, w)
		}
	}
	return out
}

// ConnectionPorts returns, for every client connection of the vhost, the
// cluster node's AMQP port it is connected to, by connection name.
func (s *System) ConnectionPorts() map[string][]int {
	s.t.Helper()
	c := s.Cluster()
	if c == nil {
		s.t.Fatal("systemtest: ConnectionPorts needs Options.Topology")
	}
	out, err := c.Ctl("list_connections", "-p", s.VHost, "-q", "--formatter", "json", "port", "client_properties")
	require.NoError(s.t, err, "list_connections: %s", out)
	var rows []struct {
		Port  int             `json:"port"`
		Props json.RawMessage `json:"client_properties"`
	}
	require.NoError(s.t, json.Unmarshal([]byte(out), &rows), "list_connections: %s", out)
	ports := map[string][]int{}
	for _, r := range rows {
		ports[connectionName(r.Props)] = append(ports[connectionName(r.Props)], r.Port)
	}
	return ports
}

// connectionName finds connection_name in client properties as rabbitmqctl
// prints them: [["connection_name","longstr","..."], ...].
func connectionName(props json.RawMessage) string {
	var entries [][]json.RawMessage
	if json.Unmarshal(props, &entries) != nil {
		return ""
	}
	for _, e := range entries {
		var key, value string
		if len(e) == 3 && json.Unmarshal(e[0], &key) == nil && key == "connection_name" && json.Unmarshal(e[2], &value) == nil {
			return value
		}
	}
	return ""
}
