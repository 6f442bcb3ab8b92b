package systemtest_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/audit"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/workflows"
)

// TestRollingDeployKeepsEverySagaOnItsBuild deploys a second build of the
// worker while sagas are in flight, as the README's "Deploying a change"
// does: build A is the deployment's first version and makes itself
// current; reservations start on it and stay held. Build B starts, is made
// current with `temporal worker deployment set-current-version`, and takes
// the new sagas, while A keeps serving the reservations pinned to it
// until they are committed. Every saga completes, each on the one build
// it started on, and the deployment lists both versions.
func TestRollingDeployKeepsEverySagaOnItsBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	cli, ok := temporaltest.CLIPath()
	require.True(t, ok, "the Temporal CLI sets the current version")
	deployment := "sagaflow-" + uuid.NewString()[:8]
	const buildA, buildB = "build-a", "build-b"
	sys := systemtest.Start(t, systemtest.Options{Deployment: deployment, BuildID: buildA})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	deploy := sys.Temporal.WorkerDeploymentClient().GetHandle(deployment)
	versionA := worker.WorkerDeploymentVersion{DeploymentName: deployment, BuildID: buildA}
	versionB := worker.WorkerDeploymentVersion{DeploymentName: deployment, BuildID: buildB}

	d, err := deploy.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	require.NoError(t, err)
	require.Equal(t, &versionA, d.Info.RoutingConfig.CurrentVersion, "the first build of a deployment makes itself current")

	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "alice", Currency: "EUR", Owner: "Alice", InitialBalance: 100_000})
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "shop", Currency: "EUR", Owner: "Shop"})
	sys.MustAccept(ctx, contract.InventoryQueue, events.CmdInventoryRestock, events.InventoryRestock{SKU: "mug", Quantity: 100})

	// On A: a transfer that completes at once, and reservations held
	// until they are committed: the sagas in flight during the deploy.
	onA := []string{startTransfer(t, ctx, sys, "a-1")}
	requireCompleted(t, ctx, sys, onA[0])
	var heldOnA []string
	for i := range 3 {
		id := startReservation(t, ctx, sys, fmt.Sprintf("a-%d", i))
		heldOnA = append(heldOnA, id)
		awaitHeld(t, ctx, sys, id)
	}

	// Deploy B: it registers its version but takes nothing until it is
	// current.
	sys.StartWorkerWith(systemtest.WorkerOptions{BuildID: buildB})
	d, err = deploy.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	require.NoError(t, err)
	require.Equal(t, &versionA, d.Info.RoutingConfig.CurrentVersion, "a new build never makes itself current over another")
	out, err := exec.CommandContext(ctx, cli, "worker", "deployment", "set-current-version",
		"--deployment-name", deployment, "--build-id", buildB, "--yes",
		"--address", sys.TemporalAddress, "--namespace", "default").CombinedOutput()
	require.NoError(t, err, "temporal worker deployment set-current-version: %s", out)

	// New sagas start on B, the current version.
	onB := []string{startTransfer(t, ctx, sys, "b-1")}
	order := events.OrderPlaced{OrderID: "b-2-" + uuid.NewString()[:8], CustomerID: "alice", MerchantID: "shop", Currency: "EUR",
		Lines: []events.OrderLine{{SKU: "mug", Quantity: 1, UnitPrice: 300}}, Total: 300}
	_, err = sys.Temporal.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, sys.TaskQueue), workflows.OrderWorkflow, order)
	require.NoError(t, err)
	onB = append(onB, contract.OrderWorkflowID(order.OrderID))
	var heldOnB []string
	for i := range 2 {
		id := startReservation(t, ctx, sys, fmt.Sprintf("b-%d", i))
		heldOnB = append(heldOnB, id)
		awaitHeld(t, ctx, sys, id)
	}

	// The held reservations finish: A's on A, though B is current.
	for _, id := range append(slices.Clone(heldOnA), heldOnB...) {
		require.NoError(t, sys.Temporal.SignalWorkflow(ctx, id, "", contract.SignalCommit, nil))
	}
	for _, id := range append(slices.Clone(heldOnA), heldOnB...) {
		var res contract.ReservationResult
		require.NoError(t, sys.Temporal.GetWorkflow(ctx, id, "").Get(ctx, &res), id)
		require.Equal(t, contract.ReservationCommitted, res.Outcome, id)
	}
	for _, id := range onB {
		requireCompleted(t, ctx, sys, id)
	}
	onA = append(onA, heldOnA...)
	onB = append(onB, heldOnB...)
	// The order's payment child is pinned to its build too.
	onB = append(onB, contract.TransferWorkflowID(contract.OrderTransferID(order.OrderID)))

	for _, c := range []struct {
		build string
		ids   []string
	}{{buildA, onA}, {buildB, onB}} {
		for _, id := range c.ids {
			want := audit.Version{DeploymentName: deployment, BuildID: c.build, Behavior: "Pinned"}
			desc, err := sys.Temporal.DescribeWorkflowExecution(ctx, id, "")
			require.NoError(t, err, id)
			require.Equal(t, &want, audit.DescribedVersion(desc.GetWorkflowExecutionInfo()), "%s: the version Temporal pinned it to", id)
			var evs []*historypb.HistoryEvent
			it := sys.Temporal.GetWorkflowHistory(ctx, id, "", false, 0)
			for it.HasNext() {
				e, err := it.Next()
				require.NoError(t, err, id)
				evs = append(evs, e)
			}
			tl := audit.Build(evs, desc, audit.Options{})
			require.Len(t, tl.Versions, 1, "%s: its workflow tasks ran on one build: %+v", id, tl.Versions)
			got := tl.Versions[0]
			require.Equal(t, want, audit.Version{DeploymentName: got.DeploymentName, BuildID: got.BuildID, Behavior: got.Behavior}, id)
			require.Equal(t, "Completed", tl.Status, id)
		}
	}

	// The deployment lists both versions, B current; A drains.
	out, err = exec.CommandContext(ctx, cli, "worker", "deployment", "describe", "--name", deployment, "--output", "json",
		"--address", sys.TemporalAddress, "--namespace", "default").CombinedOutput()
	require.NoError(t, err, "temporal worker deployment describe: %s", out)
	for _, build := range []string{buildA, buildB} {
		require.Contains(t, string(out), build, "temporal worker deployment describe lists %s", build)
	}
	d, err = deploy.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	require.NoError(t, err)
	require.Equal(t, &versionB, d.Info.RoutingConfig.CurrentVersion)
	var listed []worker.WorkerDeploymentVersion
	for _, v := range d.Info.VersionSummaries {
		listed = append(listed, v.Version)
	}
	require.ElementsMatch(t, []worker.WorkerDeploymentVersion{versionA, versionB}, listed)

	// A's pinned sagas are done: the server marks it drained, and it
	// stops cleanly.
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := deploy.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		require.NoError(t, err)
		i := slices.IndexFunc(d.Info.VersionSummaries, func(s client.WorkerDeploymentVersionSummary) bool { return s.Version == versionA })
		require.GreaterOrEqual(t, i, 0, "%s is listed", buildA)
		status := d.Info.VersionSummaries[i].DrainageStatus
		if status == client.WorkerDeploymentVersionDrainageStatusDrained {
			break
		}
		require.True(t, time.Now().Before(deadline), "%s is not drained after a minute: drainage status %v", buildA, status)
		time.Sleep(500 * time.Millisecond)
	}
	require.NoError(t, sys.Workers()[0].Stop(), "build A stops with exit code 0")
}

func startTransfer(t *testing.T, ctx context.Context, sys *systemtest.System, id string) string {
	t.Helper()
	id += "-" + uuid.NewString()[:8]
	run, err := sys.Temporal.ExecuteWorkflow(ctx, contract.TransferStartOptions(id, sys.TaskQueue), workflows.TransferWorkflow,
		contract.TransferInput{TransferID: id, SourceAccountID: "alice", TargetAccountID: "shop", Amount: 100, Currency: "EUR"})
	require.NoError(t, err)
	return run.GetID()
}

// startReservation starts a reservation of one mug held for ten minutes:
// it stays in flight until the test commits it.
func startReservation(t *testing.T, ctx context.Context, sys *systemtest.System, id string) string {
	t.Helper()
	id += "-" + uuid.NewString()[:8]
	run, err := sys.Temporal.ExecuteWorkflow(ctx, contract.ReservationStartOptions(id, sys.TaskQueue), workflows.ReserveInventoryWorkflow,
		contract.ReservationInput{ReservationID: id, Lines: []events.StockLine{{SKU: "mug", Quantity: 1}}, TTL: 10 * time.Minute})
	require.NoError(t, err)
	return run.GetID()
}

// awaitHeld polls a reservation's status query until its stock is held.
func awaitHeld(t *testing.T, ctx context.Context, sys *systemtest.System, id string) {
	t.Helper()
	var last string
	for {
		resp, err := sys.Temporal.QueryWorkflow(ctx, id, "", contract.QueryStatus)
		if err == nil {
			var st contract.ReservationState
			require.NoError(t, resp.Get(&st))
			if st.Hold == contract.HoldHeld {
				return
			}
			last = string(st.Hold)
		} else {
			last = err.Error()
		}
		require.NoError(t, ctx.Err(), "%s never held its stock: %s", id, last)
		time.Sleep(50 * time.Millisecond)
	}
}

func requireCompleted(t *testing.T, ctx context.Context, sys *systemtest.System, id string) {
	t.Helper()
	var res struct {
		Outcome string `json:"outcome"`
	}
	require.NoError(t, sys.Temporal.GetWorkflow(ctx, id, "").Get(ctx, &res), id)
	require.Contains(t, []string{string(contract.TransferCompleted), string(contract.OrderConfirmed)}, res.Outcome, id)
}
