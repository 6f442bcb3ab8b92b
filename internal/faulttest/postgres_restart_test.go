//go:build faults

package faulttest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// pgRestartLock serialises the tests that restart the shared PostgreSQL.
const pgRestartLock = "/tmp/sagaflow-pg-restart.lock"

// restartSharedPostgres restarts the local PostgreSQL under pgRestartLock.
// flock's -o closes the lock's descriptor in pg_ctlcluster, so the
// postmaster it starts does not inherit it and hold the lock for as long
// as it runs; -w bounds the wait for a restart another test is making.
func restartSharedPostgres(t *testing.T, ctx context.Context) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "flock", "-o", "-w", "60", pgRestartLock,
		"pg_ctlcluster", "--skip-systemctl-redirect", postgresVersion(t), "main", "restart").CombinedOutput()
	require.NoError(t, err, "flock -o -w 60 %s pg_ctlcluster restart (exit 1 without output: the lock was not free within 60s): %s", pgRestartLock, out)
}

// postmasterStart is the start time of the PostgreSQL server: a restart
// changes it.
func postmasterStart(t *testing.T, ctx context.Context) time.Time {
	return postmasterStartAt(t, ctx, testenv.PostgresDSN(t))
}

// TestPostgresRestart restarts PostgreSQL mid-load while the services run
// on it: the transactions in flight fail and their commands are retried,
// the inbox keeps each applied once, the relays publish what they had not
// yet, and every saga ends with money and stock conserved.
func TestPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: restarts PostgreSQL and runs hundreds of sagas")
	}
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		testenv.Unavailable(t, "pg_ctlcluster", "install postgresql-common and run PostgreSQL 15 as the cluster 15/main")
	}
	var restart struct {
		took          time.Duration
		before, after time.Time
	}
	runScenario(t, scenario{
		system: systemtest.Options{Postgres: true},
		hooks: func(f *fixture) []hook {
			return []hook{{name: "PostgreSQL restart", after: 0.3, run: func() {
				restart.before = postmasterStart(f.t, f.ctx)
				start := time.Now()
				restartSharedPostgres(f.t, f.ctx)
				restart.took = time.Since(start)
				restart.after = postmasterStart(f.t, f.ctx)
				require.True(f.t, restart.after.After(restart.before), "PostgreSQL was restarted: started %s, now %s", restart.before, restart.after)
				f.count++
			}}}
		},
		describe: func(f *fixture) string {
			require.Equal(f.t, 1, f.count)
			return fmt.Sprintf("%d PostgreSQL restart (%s; postmaster started %s, then %s); %d deliveries retried in all",
				f.count, restart.took.Round(100*time.Millisecond), restart.before.Format("15:04:05"), restart.after.Format("15:04:05"),
				int(f.checker.metrics["sagaflow_amqp_retried_total"]))
		},
	})
}
