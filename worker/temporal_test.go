package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/workflows"
)

func TestMain(m *testing.M) { temporaltest.Main(m) }

func noopActivity(context.Context) error { return nil }

// TestRegisterVersion: a versioned worker waits until its version is
// listed with both task queues; it makes itself current only when asked
// and only when the deployment has no current version.
func TestRegisterVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Temporal dev server")
	}
	c := temporaltest.Client(t)
	queue := temporaltest.TaskQueue(t)
	name := "worker-test-" + uuid.NewString()[:8]
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	register := func(build string, makeCurrent bool) bool {
		t.Helper()
		v := versioning{DeploymentName: name, BuildID: build, MakeCurrentIfUnset: makeCurrent}
		w := worker.New(c, queue, worker.Options{DeploymentOptions: deploymentOptions(v)})
		workflows.Register(w)
		w.RegisterActivity(noopActivity)
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
		current, err := registerVersion(ctx, c, queue, v, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		return current
	}
	currentVersion := func() *worker.WorkerDeploymentVersion {
		t.Helper()
		d, err := c.WorkerDeploymentClient().GetHandle(name).Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		require.NoError(t, err)
		return d.Info.RoutingConfig.CurrentVersion
	}

	require.False(t, register("b1", false), "not asked to become current")
	require.Nil(t, currentVersion())
	d, err := c.WorkerDeploymentClient().GetHandle(name).DescribeVersion(ctx, client.WorkerDeploymentDescribeVersionOptions{BuildID: "b1"})
	require.NoError(t, err)
	require.ElementsMatch(t, []client.WorkerDeploymentTaskQueueInfo{
		{Name: queue, Type: client.TaskQueueTypeWorkflow}, {Name: queue, Type: client.TaskQueueTypeActivity},
	}, d.Info.TaskQueuesInfos, "registered with both task queues")

	require.True(t, register("b1", true), "the deployment had no current version")
	require.Equal(t, &worker.WorkerDeploymentVersion{DeploymentName: name, BuildID: "b1"}, currentVersion())

	require.False(t, register("b2", true), "another build is current")
	require.Equal(t, &worker.WorkerDeploymentVersion{DeploymentName: name, BuildID: "b1"}, currentVersion(), "a current version is never replaced")
}
