package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/systemtest"
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
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "alice", Currency: "EUR", Owner: "Alice", InitialBalance: 1000})
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "bob", Currency: "EUR", Owner: "Bob"})

	run, err := sys.Temporal.ExecuteWorkflow(ctx, contract.TransferStartOptions("t-1", sys.TaskQueue), workflows.TransferWorkflow,
		contract.TransferInput{TransferID: "t-1", SourceAccountID: "alice", TargetAccountID: "bob", Amount: 250, Currency: "EUR"})
	require.NoError(t, err)
	var res contract.TransferResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, contract.TransferCompleted, res.Outcome)

	for id, want := range map[string]int64{"alice": 750, "bob": 250} {
		r := sys.MustAccept(ctx, contract.LedgerQueue, events.QueryLedgerBalance, events.LedgerBalanceQuery{AccountID: id})
		var acc contract.Account
		require.NoError(t, json.Unmarshal(r.Result, &acc))
		require.Equal(t, want, acc.Balance, id)
	}
}

// TestWorkerStopsGracefullyAndLosesNothing stops a worker with SIGTERM while
// a stream of deposits is being handled: it exits cleanly, and a new worker
// handles what was left, each deposit exactly once.
func TestWorkerStopsGracefullyAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	sys := systemtest.Start(t, systemtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "acc", Currency: "EUR"})

	const deposits = 300
	for i := range deposits {
		env, err := events.New(events.CmdLedgerDeposit, "systemtest",
			events.LedgerDeposit{AccountID: "acc", Amount: events.Money{Amount: 1, Currency: "EUR"}},
			events.WithID(fmt.Sprintf("deposit-%d", i)))
		require.NoError(t, err)
		m, err := amqp.MessageFromEnvelope("", env)
		require.NoError(t, err)
		m.RoutingKey = contract.LedgerQueue
		require.NoError(t, sys.Publisher.Publish(ctx, m))
	}
	first := sys.Workers()[0]
	require.NoError(t, first.Stop(), "SIGTERM ends the worker with exit code 0")

	sys.StartWorker()
	require.Eventually(t, func() bool {
		r, err := sys.Send(ctx, contract.LedgerQueue, events.QueryLedgerBalance, events.LedgerBalanceQuery{AccountID: "acc"})
		if err != nil || !r.Accepted() {
			return false
		}
		var acc contract.Account
		return json.Unmarshal(r.Result, &acc) == nil && acc.Balance == deposits
	}, time.Minute, 100*time.Millisecond, "every deposit applied once")
	r := sys.MustAccept(ctx, contract.LedgerQueue, events.QueryLedgerStatement, events.LedgerStatementQuery{AccountID: "acc"})
	var st contract.AccountStatement
	require.NoError(t, json.Unmarshal(r.Result, &st))
	require.Len(t, st.Events, deposits+1, "the opening and one event per deposit")
}
