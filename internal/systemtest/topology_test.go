package systemtest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/rmqcluster"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/services/ledger"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/workflows"
)

// TestProductionTopology runs orders and transfers on the production
// topology: a 3-node cluster with quorum queues, two orchestration and two
// services workers on PostgreSQL whose connections spread over the nodes.
func TestProductionTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a RabbitMQ cluster and four worker processes")
	}
	cluster := rmqcluster.Start(t, rmqcluster.Options{Prefix: "sagaflowsys"})
	sys := systemtest.Start(t, systemtest.Options{Topology: &systemtest.Topology{Cluster: cluster}})
	require.Len(t, sys.WorkersRunning(systemtest.RunOrchestration), 2)
	require.Len(t, sys.WorkersRunning(systemtest.RunServices), 2)
	for _, name := range []string{systemtest.ServiceLedger, systemtest.ServiceInventory, systemtest.ServiceOrders} {
		require.True(t, strings.HasPrefix(sys.DSN(name), "postgres://"), "%s on PostgreSQL: %s", name, sys.DSN(name))
	}

	// The workers' connections are on more than one node.
	nodes := map[int]bool{}
	workers := 0
	for name, ports := range sys.ConnectionPorts() {
		if strings.HasPrefix(name, "sagaflow-worker") {
			workers += len(ports)
			for _, p := range ports {
				nodes[p] = true
			}
		}
	}
	require.GreaterOrEqual(t, workers, 4, "a connection per worker")
	require.GreaterOrEqual(t, len(nodes), 2, "the workers' connections spread over the nodes: %v", sys.ConnectionPorts())
	// The command queues are quorum queues with a leader on the cluster.
	for _, q := range []string{contract.LedgerQueue, contract.InventoryQueue, contract.ReplyQueue} {
		leader, err := cluster.QueueLeaderIn(sys.VHost, q)
		require.NoError(t, err)
		require.NotNil(t, cluster.NodeNamed(leader), "%s led by a node of the cluster, not %s", q, leader)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "customer", Currency: "EUR", InitialBalance: 10_000})
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "merchant", Currency: "EUR"})
	sys.MustAccept(ctx, contract.InventoryQueue, events.CmdInventoryRestock, events.InventoryRestock{SKU: "sku-1", Quantity: 100})

	const orders = 20
	var wg sync.WaitGroup
	results := make([]contract.OrderResult, orders)
	errs := make([]error, orders)
	prefix := fmt.Sprintf("topo-%d", time.Now().UnixNano())
	for i := range orders {
		wg.Go(func() {
			o := events.OrderPlaced{OrderID: fmt.Sprintf("%s-%d", prefix, i), CustomerID: "customer", MerchantID: "merchant", Currency: "EUR",
				Lines: []events.OrderLine{{SKU: "sku-1", Quantity: 2, UnitPrice: 50}}, Total: 100}
			run, err := sys.Temporal.ExecuteWorkflow(ctx, contract.OrderStartOptions(o, sys.TaskQueue), workflows.OrderWorkflow, o)
			if err == nil {
				err = run.Get(ctx, &results[i])
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range orders {
		require.NoError(t, errs[i])
		require.Equal(t, contract.OrderConfirmed, results[i].Outcome, "%+v", results[i])
	}

	// The services workers' relays, competing for the one PostgreSQL
	// outbox, sent every row.
	db, err := store.Open(ctx, sys.DSN(systemtest.ServiceLedger))
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Outbox(ctx, ledger.ServiceName)
	require.NoError(t, err)
	require.NotEmpty(t, rows)
	for _, r := range rows {
		require.False(t, r.SentAt.IsZero(), "outbox row %s sent", r.Message.ID)
	}
}
