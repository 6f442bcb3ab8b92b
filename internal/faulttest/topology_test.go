//go:build faults

package faulttest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/rmqcluster"
	"github.com/sagaflow/sagaflow/internal/systemtest"
)

// clusterShape is the load of each fault on the production topology.
var clusterShape = shape{bridgeOrders: 180, directOrders: 170, transfers: 150, inFlight: 50, stock: 150}

// TestClusterTopology injects node and worker faults into the production
// topology: a 3-node RabbitMQ cluster with quorum queues, two orchestration
// and two services workers on PostgreSQL. The faults share one cluster;
// each runs its own system (vhost, databases, workers) and its own load.
func TestClusterTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: starts a RabbitMQ cluster, worker processes and runs hundreds of sagas")
	}
	cluster := rmqcluster.Start(t, rmqcluster.Options{Prefix: "sagaflowfault"})
	topology := &systemtest.Topology{Cluster: cluster}
	healthyCluster := func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		require.NoError(t, cluster.WaitHealthy(ctx), "the cluster is whole before the fault")
	}

	t.Run("LeaderNodeStopped", func(t *testing.T) {
		healthyCluster(t)
		var nf nodeFault
		runScenario(t, scenario{
			topology: topology,
			shape:    clusterShape,
			hooks: func(f *fixture) []hook {
				return []hook{{name: "stop_app of the queues' leader", after: 0.3, run: func() {
					nf = injectNodeFault(f, "stop_app", (*rmqcluster.Node).StopApp, (*rmqcluster.Node).StartApp)
				}}}
			},
			describe: func(f *fixture) string { return nf.String() },
		})
	})

	t.Run("NodeKilled", func(t *testing.T) {
		healthyCluster(t)
		var nf nodeFault
		runScenario(t, scenario{
			topology: topology,
			shape:    clusterShape,
			hooks: func(f *fixture) []hook {
				return []hook{{name: "SIGKILL of the queues' leader node", after: 0.3, run: func() {
					nf = injectNodeFault(f, "SIGKILL", (*rmqcluster.Node).Kill, (*rmqcluster.Node).Start)
				}}}
			},
			describe: func(f *fixture) string { return nf.String() },
		})
	})

	t.Run("WorkersKilled", func(t *testing.T) {
		healthyCluster(t)
		runScenario(t, scenario{
			topology: topology,
			shape:    clusterShape,
			hooks: func(f *fixture) []hook {
				return []hook{{name: "SIGKILL of a services and an orchestration worker", after: 0.35, run: func() {
					svc := f.sys.WorkersRunning(systemtest.RunServices)
					orch := f.sys.WorkersRunning(systemtest.RunOrchestration)
					require.Len(f.t, svc, 2)
					require.Len(f.t, orch, 2)
					f.checker.kill(svc[0], orch[0])
					require.True(f.t, svc[0].Exited() && orch[0].Exited(), "both workers are gone")
					require.Len(f.t, f.sys.WorkersRunning(""), 2, "the other two workers still run")
					f.count += 2
					f.sys.StartWorkerWith(systemtest.WorkerOptions{Run: systemtest.RunServices})
					f.sys.StartWorkerWith(systemtest.WorkerOptions{Run: systemtest.RunOrchestration})
				}}}
			},
			describe: func(f *fixture) string {
				return fmt.Sprintf("%d workers SIGKILLed at once (services + orchestration) + restarted", f.count)
			},
		})
	})
}

// nodeFault is what a node fault did, for the table.
type nodeFault struct {
	how        string
	node       string
	led        int // queues the node led
	moved      int // of them, led by another node while it was down
	reconnects int // reconnections of the workers to other nodes
	down       time.Duration
}

func (nf nodeFault) String() string {
	if nf.node == "" {
		return "no node fault"
	}
	short, _, _ := strings.Cut(nf.node, "@")
	return fmt.Sprintf("%s of %s (leader of %d queues, %d moved; %d reconnects; down %s)",
		nf.how, short, nf.led, nf.moved, nf.reconnects, nf.down.Round(time.Second))
}

// injectNodeFault takes down the node that leads the most of the system's
// queues, asserts that it is down, that the queues it led elected leaders
// on other nodes and that the workers reconnected to other nodes, then
// brings it back and waits until the cluster is whole again.
func injectNodeFault(f *fixture, how string, down, up func(*rmqcluster.Node) error) nodeFault {
	t, sys, c := f.t, f.sys, f.sys.Cluster()
	leaders := map[string]string{}
	count := map[string]int{}
	for _, q := range consumerQueues {
		l, err := c.QueueLeaderIn(sys.VHost, q)
		require.NoError(t, err)
		leaders[q] = l
		count[l]++
	}
	var target *rmqcluster.Node
	for _, n := range c.Nodes() {
		if target == nil || count[n.Name] > count[target.Name] {
			target = n
		}
	}
	nf := nodeFault{how: how, node: target.Name, led: count[target.Name]}
	require.Positive(t, nf.led, "%s leads queues of the system: %v", target.Name, leaders)
	onTarget := 0
	for name, ports := range sys.ConnectionPorts() {
		if strings.HasPrefix(name, "sagaflow-worker") {
			onTarget += countOf(ports, target.Port)
		}
	}
	require.Positive(t, onTarget, "a worker is connected to %s before the fault: %v", target.Name, sys.ConnectionPorts())
	before := reconnectsByNode(f)

	start := time.Now()
	require.NoError(t, down(target))
	require.False(t, target.Running(), "%s is down", target.Name)

	// Leaders move and the clients move, within a deadline: neither
	// announces itself to a test.
	deadline := time.Now().Add(90 * time.Second)
	var state string
	for {
		nf.moved = 0
		for q, l := range leaders {
			if l != target.Name {
				continue
			}
			if now, err := c.QueueLeaderIn(sys.VHost, q); err == nil && now != target.Name {
				nf.moved++
			}
		}
		after := reconnectsByNode(f)
		nf.reconnects = 0
		for node, n := range after {
			nf.reconnects += int(n - before[node])
		}
		toTarget := after[fmt.Sprintf("127.0.0.1:%d", target.Port)] - before[fmt.Sprintf("127.0.0.1:%d", target.Port)]
		stillOn := 0
		for name, ports := range sys.ConnectionPorts() {
			if strings.HasPrefix(name, "sagaflow-worker") {
				stillOn += countOf(ports, target.Port)
			}
		}
		state = fmt.Sprintf("%d of %d leaders moved, %d reconnects (%d to the node that is down), %d worker connections on it", nf.moved, nf.led, nf.reconnects, int(toTarget), stillOn)
		if nf.moved == nf.led && nf.reconnects >= onTarget && toTarget == 0 && stillOn == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "after %s of %s: %s", how, target.Name, state)
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%s of %s: %s", how, target.Name, state)

	require.NoError(t, up(target))
	nf.down = time.Since(start)
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, c.WaitHealthy(ctx), "the cluster is whole again")
	f.count++
	return nf
}

// reconnectsByNode sums the running workers' sagaflow_amqp_reconnects_total
// by the node (host:port) they reconnected to.
func reconnectsByNode(f *fixture) map[string]float64 {
	out := map[string]float64{}
	for _, w := range f.sys.WorkersRunning("") {
		for k, v := range scrape(f.t, w.HTTPAddr) {
			if !strings.HasPrefix(k, "sagaflow_amqp_reconnects_total{") {
				continue
			}
			_, rest, ok := strings.Cut(k, `node="`)
			if !ok {
				continue
			}
			node, _, _ := strings.Cut(rest, `"`)
			out[node] += v
		}
	}
	return out
}

func countOf(xs []int, x int) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}
