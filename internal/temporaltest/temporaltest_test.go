package temporaltest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

func TestMain(m *testing.M) { temporaltest.Main(m) }

func greet(_ context.Context, name string) (string, error) { return "hello " + name, nil }

func greetWorkflow(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, greet, name).Get(ctx, &out)
	return out, err
}

// TestDevServerRunsWorkflow proves the harness end to end: the shared server
// starts, a worker polls its unique queue, a workflow and its activity run.
func TestDevServerRunsWorkflow(t *testing.T) {
	c, queue := temporaltest.NewWorker(t, func(w worker.Worker) {
		w.RegisterWorkflow(greetWorkflow)
		w.RegisterActivity(greet)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "smoke-" + queue, TaskQueue: queue}, greetWorkflow, "saga")
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "hello saga", out)
}

// TestSearchAttributesRegistered proves the server knows the saga search
// attributes, without which UpsertTypedSearchAttributes fails the workflow.
func TestSearchAttributesRegistered(t *testing.T) {
	c := temporaltest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	for _, name := range []string{"SagaStatus", "OrderId", "CustomerId"} {
		require.Contains(t, resp.GetCustomAttributes(), name)
	}
}

// TestTaskQueuesAreUnique guards the isolation between tests sharing a server.
func TestTaskQueuesAreUnique(t *testing.T) {
	require.NotEqual(t, temporaltest.TaskQueue(t), temporaltest.TaskQueue(t))
}
