package systemtest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/services/ledger"
	"github.com/sagaflow/sagaflow/workflows"
)

func TestMain(m *testing.M) { systemtest.Main(m) }

// TestTransferThroughWorkerProcess runs a transfer through a real worker
// process, then stops the worker gracefully.
func TestTransferThroughWorkerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a worker process")
	}
	sys := systemtest.Start(t, systemtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sys.MustAccept(ctx, activities.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "alice", Currency: "EUR", Owner: "Alice", InitialBalance: 1000})
	sys.MustAccept(ctx, activities.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "bob", Currency: "EUR", Owner: "Bob"})

	run, err := sys.Temporal.ExecuteWorkflow(ctx, workflows.TransferStartOptions("t-1", sys.TaskQueue), workflows.TransferWorkflow,
		workflows.TransferInput{TransferID: "t-1", SourceAccountID: "alice", TargetAccountID: "bob", Amount: 250, Currency: "EUR"})
	require.NoError(t, err)
	var res workflows.TransferResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)

	for id, want := range map[string]int64{"alice": 750, "bob": 250} {
		r := sys.MustAccept(ctx, activities.LedgerQueue, ledger.QueryBalance, ledger.BalanceQuery{AccountID: id})
		var acc ledger.Account
		require.NoError(t, json.Unmarshal(r.Result, &acc))
		require.Equal(t, want, acc.Balance, id)
	}
}
