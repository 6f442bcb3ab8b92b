package command_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/command/commandtest"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// The inbox → handler → outbox transaction is a span of the delivery's
// trace, and every row it writes (the reply and the event) keeps that
// span's trace context for the relay's later publish.
func TestTransactionIsASpanAndItsOutboxRowsKeepItsTraceContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	db := storetest.Open(t, store.SQLite)
	proc, err := command.NewProcessor(db, command.Config{Service: "ledger"})
	require.NoError(t, err)
	proc.Handle(events.CmdLedgerDeposit, func(_ context.Context, _ *store.Tx, cmd command.Command) (command.Outcome, error) {
		dep := cmd.Payload.(events.LedgerDeposit)
		return command.Accept(nil, command.Event{Type: events.TypeFundsDeposited, Subject: dep.AccountID,
			Payload: events.FundsDeposited{AccountID: dep.AccountID, Amount: dep.Amount, Balance: dep.Amount}}), nil
	})
	env := commandtest.Envelope(t, events.CmdLedgerDeposit, events.LedgerDeposit{AccountID: "acc", Amount: events.Money{Amount: 5, Currency: "EUR"}})
	ctx, process := otel.Tracer("test").Start(context.Background(), "process ledger.commands")
	require.NoError(t, proc.Deliver(ctx, commandtest.Delivery(t, env)))
	process.End()

	var tx sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "ledger handle "+events.CmdLedgerDeposit {
			tx = s
		}
	}
	require.NotNil(t, tx, "the transaction is a span")
	require.Equal(t, process.SpanContext().SpanID(), tx.Parent().SpanID())
	rows, err := db.Outbox(t.Context(), "ledger")
	require.NoError(t, err)
	require.Len(t, rows, 2)
	want := "00-" + tx.SpanContext().TraceID().String() + "-" + tx.SpanContext().SpanID().String() + "-01"
	for _, r := range rows {
		require.Equal(t, want, r.Message.TraceContext["traceparent"], "%s keeps the transaction's context", r.Message.Type)
	}
}
