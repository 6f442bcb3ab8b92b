package temporalcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/contract"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Options{HistoryHosts: 12, PortBase: 80, LogLevel: "loud", Databases: "Temporal-DB", SearchAttributes: []string{"SagaStatus"}}.Validate()
	require.Error(t, err)
	for _, want := range []string{"HistoryHosts 12", "PortBase 80", `LogLevel "loud"`, `Databases "Temporal-DB"`, `search attribute "SagaStatus"`} {
		require.Contains(t, err.Error(), want)
	}
	require.NoError(t, Options{}.Validate())
}

func TestDynamicConfigFileFromDevServerValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dc.yaml")
	require.NoError(t, writeDynamicConfig(path, []string{
		`matching.wv.VersionDrainageStatusRefreshInterval="5s"`,
		"system.enableDeploymentVersions=true",
	}))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "# Written by internal/temporalcluster.\n"+
		"matching.wv.VersionDrainageStatusRefreshInterval:\n  - value: \"5s\"\n"+
		"system.enableDeploymentVersions:\n  - value: true\n", string(data))

	require.ErrorContains(t, writeDynamicConfig(path, []string{"no-equals-sign"}), "want KEY=JSON")
	require.ErrorContains(t, writeDynamicConfig(path, []string{"a.b=5s"}), "not JSON")
}

func TestMissingBinariesAreNamed(t *testing.T) {
	_, err := New(Options{ServerPath: filepath.Join(t.TempDir(), "temporal-server"), SQLToolPath: "/bin/true"})
	require.ErrorIs(t, err, ErrNotBuilt)
	require.ErrorContains(t, err, "make temporal-server")
}

func greetWorkflow(ctx workflow.Context, name string) (string, error) {
	return "hello " + name, nil
}

// TestClusterServesAndMovesShards starts a cluster, runs a workflow on it,
// and kills a history host: the other one takes over its shards, and the
// killed one gets its share back once started again.
func TestClusterServesAndMovesShards(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five Temporal server processes")
	}
	c := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	resp, err := c.Client().OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: c.Namespace()})
	require.NoError(t, err)
	for _, sa := range contract.SearchAttributes() {
		name, _, _ := strings.Cut(sa, "=")
		require.Contains(t, resp.GetCustomAttributes(), name)
	}
	require.Len(t, c.Services(), 5)
	for _, s := range c.Services() {
		require.True(t, s.Running(), s.Name)
		require.FileExists(t, s.LogPath)
	}
	persistence, visibility := c.Databases()
	require.True(t, strings.HasPrefix(persistence, "sagaflowtc_"), persistence)
	require.Equal(t, persistence+"_vis", visibility)

	w := worker.New(c.Client(), "greet", worker.Options{})
	w.RegisterWorkflow(greetWorkflow)
	require.NoError(t, w.Start())
	defer w.Stop()
	run, err := c.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "greet-1", TaskQueue: "greet"}, greetWorkflow, "cluster")
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "hello cluster", out)

	both := func(owned map[string]int) bool { return owned["history-1"] > 0 && owned["history-2"] > 0 }
	before, err := c.WaitShards(ctx, both)
	require.NoError(t, err, "both history hosts hold shards")
	t.Logf("shards before: %v", before)

	require.NoError(t, c.KillService("history-1"))
	require.False(t, c.Service("history-1").Running())
	after, err := c.WaitShards(ctx, func(owned map[string]int) bool { return owned["history-2"] == c.Shards() })
	require.NoError(t, err, "history-2 takes over the shards of history-1")
	t.Logf("shards with history-1 gone: %v", after)

	require.NoError(t, c.StartService(ctx, "history-1"))
	back, err := c.WaitShards(ctx, both)
	require.NoError(t, err, "history-1 gets shards back")
	t.Logf("shards with history-1 back: %v", back)
}
