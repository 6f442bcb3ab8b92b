package systemtest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/systemtest"
)

// TestOrderOnAConfiguredExchange runs an order through a worker whose event
// exchange is not the default one: the bridge starts the saga from the
// order.placed published there, the saga is confirmed, every event of the
// services and of the sagas arrives on that exchange, and the default
// exchange is never even declared.
func TestOrderOnAConfiguredExchange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a worker process")
	}
	const exchange = "tenant-a.events"
	sys := systemtest.Start(t, systemtest.Options{Exchange: exchange})
	require.Equal(t, exchange, sys.Exchange)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// Every event type that arrives on the exchange.
	var mu sync.Mutex
	arrived := map[string]bool{}
	tap, err := sys.Conn.NewConsumer(amqp.ConsumerConfig{Name: "systemtest.tap", Bindings: []string{"#"}, Decoder: amqp.DecodeEnvelope},
		func(_ context.Context, d amqp.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			arrived[d.Type] = true
			return nil
		})
	require.NoError(t, err)
	tapCtx, stopTap := context.WithCancel(ctx)
	tapDone := make(chan error, 1)
	go func() { tapDone <- tap.Run(tapCtx) }()
	t.Cleanup(func() { stopTap(); <-tapDone })
	require.Eventually(t, tap.Consuming, 30*time.Second, 20*time.Millisecond)

	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "carol", Currency: "EUR", Owner: "Carol", InitialBalance: 1000})
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "shop", Currency: "EUR", Owner: "Shop"})
	sys.MustAccept(ctx, contract.InventoryQueue, events.CmdInventoryRestock, events.InventoryRestock{SKU: "mug", Quantity: 5})

	order := events.OrderPlaced{OrderID: "o-1", CustomerID: "carol", MerchantID: "shop",
		Lines: []events.OrderLine{{SKU: "mug", Quantity: 2, UnitPrice: 150}}, Total: 300, Currency: "EUR"}
	env, err := events.New(events.TypeOrderPlaced, "systemtest", order, events.WithSubject(order.OrderID))
	require.NoError(t, err)
	require.NoError(t, sys.PublishEvent(ctx, env))

	var res contract.OrderResult
	for {
		err := sys.Temporal.GetWorkflow(ctx, contract.OrderWorkflowID(order.OrderID), "").Get(ctx, &res)
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) {
			require.NoError(t, err, "the order saga")
			break
		}
		require.NoError(t, ctx.Err(), "the bridge never started the order saga")
		time.Sleep(100 * time.Millisecond) // the bridge starts it asynchronously
	}
	require.Equal(t, contract.OrderConfirmed, res.Outcome, "%+v", res)

	want := []string{
		events.TypeOrderPlaced,                                      // the test's own
		events.TypeInventoryReserved, events.TypeInventoryCommitted, // the inventory service's
		events.TypeFundsWithdrawn, events.TypeFundsDeposited, // the ledger's
		events.TypeTransferCompleted, events.TypeOrderConfirmed, // the sagas'
	}
	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.DeleteFunc(slices.Clone(want), func(typ string) bool { return arrived[typ] })
	}
	// The relays publish after the transactions commit: poll until the
	// last of them arrived.
	deadline := time.Now().Add(time.Minute)
	for len(missing()) > 0 {
		require.True(t, time.Now().Before(deadline), "events never arrived on %s: %v", exchange, missing())
		time.Sleep(50 * time.Millisecond)
	}

	raw, err := amqp091.Dial(sys.AMQPURL)
	require.NoError(t, err)
	defer func() { _ = raw.Close() }()
	ch, err := raw.Channel()
	require.NoError(t, err)
	err = ch.ExchangeDeclarePassive(amqp.DefaultExchange, amqp091.ExchangeTopic, true, false, false, false, nil)
	var aerr *amqp091.Error
	require.ErrorAs(t, err, &aerr, "%s exists in the virtual host", amqp.DefaultExchange)
	require.Equal(t, amqp091.NotFound, aerr.Code, "nothing declared or used %s", amqp.DefaultExchange)
}
