//go:build faults

package faulttest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/sagaflow/sagaflow/internal/temporalcluster"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// TestTemporalCluster injects faults into a self-hosted Temporal server
// (internal/temporalcluster: frontend, matching, worker and two history
// hosts as separate processes on PostgreSQL) while the default load runs
// on it: a history host SIGKILLed and started again, the frontend and the
// matching service restarted, and PostgreSQL itself restarted under the
// server. Each asserts that the fault happened — the process gone, and for
// the history host its shards acquired by the other host — before the
// invariants. The faults share one cluster; each runs its own system.
func TestTemporalCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: starts a Temporal cluster, a worker process and runs hundreds of sagas")
	}
	cluster := temporalcluster.Start(t, temporaltest.ClusterOptions(""))
	run := func(t *testing.T, name string, inject func(f *fixture) string) {
		var what string
		runScenario(t, scenario{
			temporal: cluster,
			hooks: func(f *fixture) []hook {
				return []hook{{name: name, after: 0.3, run: func() {
					what = inject(f)
					f.count++
				}}}
			},
			describe: func(f *fixture) string {
				if what == "" {
					return "no fault"
				}
				return what
			},
		})
	}

	t.Run("HistoryHostKilled", func(t *testing.T) {
		run(t, "SIGKILL of a history host", func(f *fixture) string {
			return killHistoryHost(f, cluster)
		})
	})
	t.Run("FrontendRestarted", func(t *testing.T) {
		run(t, "restart of the frontend", func(f *fixture) string {
			return restartService(f, cluster, "frontend")
		})
	})
	t.Run("MatchingRestarted", func(t *testing.T) {
		run(t, "restart of the matching service", func(f *fixture) string {
			return restartService(f, cluster, "matching")
		})
	})
	t.Run("PostgresRestarted", func(t *testing.T) {
		if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
			testenv.Unavailable(t, "pg_ctlcluster", "restarting PostgreSQL needs Debian's postgresql-common")
		}
		run(t, "restart of PostgreSQL", func(f *fixture) string {
			return restartPostgres(f)
		})
	})
}

// killHistoryHost SIGKILLs the history host that holds the most shards,
// asserts it is gone and that the other host acquired its shards, then
// starts it again and waits until it holds shards again.
func killHistoryHost(f *fixture, c *temporalcluster.Cluster) string {
	t := f.t
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
	defer cancel()
	before, err := c.WaitShards(ctx, func(owned map[string]int) bool {
		for _, n := range owned {
			if n == 0 {
				return false
			}
		}
		return len(owned) == 2
	})
	require.NoError(t, err, "both history hosts hold shards before the fault")
	var target, other *temporalcluster.Service
	for _, h := range c.ServicesOf(temporalcluster.RoleHistory) {
		if target == nil || before[h.Name] > before[target.Name] {
			target = h
		}
	}
	for _, h := range c.ServicesOf(temporalcluster.RoleHistory) {
		if h != target {
			other = h
		}
	}
	createdBefore, err := other.ShardsCreated(ctx)
	require.NoError(t, err)
	pid := target.Pid()

	start := time.Now()
	require.NoError(t, c.KillService(target.Name))
	require.False(t, target.Running(), "%s is down", target.Name)
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d of %s is gone", pid, target.Name)

	after, err := c.WaitShards(ctx, func(owned map[string]int) bool { return owned[other.Name] == c.Shards() })
	require.NoError(t, err, "%s acquires the shards of %s", other.Name, target.Name)
	moved := time.Since(start)
	createdAfter, err := other.ShardsCreated(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, createdAfter-createdBefore, before[target.Name],
		"%s created a shard context for each shard of %s (sharditem_created_count)", other.Name, target.Name)
	t.Logf("shards %v before, %v with %s gone (%s later)", before, after, target.Name, moved.Round(time.Millisecond))

	require.NoError(t, c.StartService(ctx, target.Name))
	back, err := c.WaitShards(ctx, func(owned map[string]int) bool { return owned[target.Name] > 0 })
	require.NoError(t, err, "%s holds shards again", target.Name)
	return fmt.Sprintf("SIGKILL of %s (held %d of %d shards; %s acquired them %s later) + restart (shards %v)",
		target.Name, before[target.Name], c.Shards(), other.Name, moved.Round(100*time.Millisecond), back)
}

// restartService stops a service gracefully, asserts its process is gone,
// starts it again and waits until the frontend serves the namespace.
func restartService(f *fixture, c *temporalcluster.Cluster, name string) string {
	t := f.t
	s := c.Service(name)
	require.True(t, s.Running(), "%s runs before the fault", name)
	pid := s.Pid()
	start := time.Now()
	require.NoError(t, c.StopService(name))
	require.False(t, s.Running(), "%s is down", name)
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d of %s is gone", pid, name)
	down := time.Since(start)

	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, c.StartService(ctx, name))
	require.NotEqual(t, pid, s.Pid(), "%s runs as a new process", name)
	awaitServing(t, ctx, c)
	return fmt.Sprintf("restart of the %s (pid %d stopped in %s, pid %d serving %s after the stop began)",
		name, pid, down.Round(100*time.Millisecond), s.Pid(), time.Since(start).Round(100*time.Millisecond))
}

// restartPostgres restarts the machine's PostgreSQL under the Temporal
// server, asserting that the postmaster is a new one afterwards.
func restartPostgres(f *fixture) string {
	t := f.t
	dsn := testenv.PostgresDSN(t)
	before := postmasterStartAt(t, f.ctx, dsn)
	start := time.Now()
	restartSharedPostgres(t, f.ctx)
	took := time.Since(start)
	after := postmasterStartAt(t, f.ctx, dsn)
	require.True(t, after.After(before), "the postmaster restarted: started %s, before %s", after, before)
	return fmt.Sprintf("restart of PostgreSQL (%s; postmaster started %s, was %s)",
		took.Round(100*time.Millisecond), after.Format("15:04:05.000"), before.Format("15:04:05.000"))
}

// postgresVersion is the cluster version pg_ctlcluster manages (the one
// .ci/run starts).
func postgresVersion(t *testing.T) string {
	out, err := exec.Command("sh", "-c", "ls /etc/postgresql | head -n1").Output()
	require.NoError(t, err)
	v := strings.TrimSpace(string(out))
	require.NotEmpty(t, v, "a PostgreSQL cluster under /etc/postgresql")
	return v
}

// postmasterStartAt asks the PostgreSQL at dsn when its postmaster started, retrying
// while it restarts.
func postmasterStartAt(t *testing.T, ctx context.Context, dsn string) time.Time {
	deadline := time.Now().Add(time.Minute)
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var at time.Time
		conn, err := pgx.Connect(qctx, dsn)
		if err == nil {
			err = conn.QueryRow(qctx, "SELECT pg_postmaster_start_time()").Scan(&at)
			_ = conn.Close(qctx)
		}
		cancel()
		if err == nil {
			return at
		}
		require.True(t, time.Now().Before(deadline), "PostgreSQL answers: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// awaitServing waits until the frontend describes the namespace again.
func awaitServing(t *testing.T, ctx context.Context, c *temporalcluster.Cluster) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Client().WorkflowService().DescribeNamespace(rctx, &workflowservice.DescribeNamespaceRequest{Namespace: c.Namespace()})
		cancel()
		if err == nil {
			return
		}
		require.NoError(t, ctx.Err(), "the frontend serves again: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}
