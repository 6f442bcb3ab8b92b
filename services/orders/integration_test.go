package orders_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/services/orders"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// TestIntegrationProjectionAndQueries runs the read model on the real
// broker: events published on the exchange are projected, and the Client
// reads them back through request-reply.
func TestIntegrationProjectionAndQueries(t *testing.T) {
	broker := testenv.NewBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, amqp.Config{
		URL: broker.URL, ConnectionName: t.Name(),
		Exchange: broker.Exchange, DeadLetterExchange: broker.DeadLetterExchange,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	cfg := orders.Config{ProjectionQueue: broker.Name("orders-projection"), QueryQueue: broker.Name("orders.queries")}
	p := newProjection(t, storetest.Open(t, store.SQLite), cfg)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx, conn) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})
	broker.WaitConsumer(cfg.ProjectionQueue)
	broker.WaitConsumer(cfg.QueryQueue)

	requester, err := conn.NewRequester(amqp.RequesterConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = requester.Close() })
	client, err := orders.NewClient(requester, orders.ClientConfig{Queue: cfg.QueryQueue})
	require.NoError(t, err)
	pub, err := conn.NewPublisher(amqp.PublisherConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	publish := func(env events.Envelope) {
		t.Helper()
		m, err := amqp.MessageFromEnvelope(broker.Exchange, env)
		require.NoError(t, err)
		require.NoError(t, pub.Publish(t.Context(), m))
	}
	// waitStatus polls the read model through the client: the projection is
	// eventually consistent, and nothing tells the reader it caught up.
	waitStatus := func(orderID string, want events.OrderStatus) contract.OrderRecord {
		t.Helper()
		var got contract.OrderRecord
		require.Eventually(t, func() bool {
			o, err := client.Get(t.Context(), orderID)
			got = o
			return err == nil && o.Status == want
		}, 15*time.Second, 20*time.Millisecond, "order %s never reached %s (last %+v)", orderID, want, got)
		return got
	}

	customer := "cust-" + uuid.NewString()[:8]
	now := time.Now().UTC()
	first, second := uuid.NewString(), uuid.NewString()
	placedFirst := mustEnv(t, events.TypeOrderPlaced, placedPayload(first, customer), uuid.NewString(), now)
	publish(placedFirst)
	publish(placedFirst) // a redelivery changes nothing
	publish(mustEnv(t, events.TypeInventoryReserved, events.InventoryReserved{ReservationID: "r-" + first, OrderID: first,
		Lines: []events.StockLine{{SKU: "sku-1", Quantity: 2}}}, uuid.NewString(), now.Add(time.Second)))
	publish(mustEnv(t, events.TypeOrderConfirmed, events.OrderConfirmed{OrderID: first}, uuid.NewString(), now.Add(2*time.Second)))
	got := waitStatus(first, events.OrderStatusConfirmed)
	require.Equal(t, customer, got.CustomerID)
	require.Equal(t, int64(400), got.Total)
	require.Equal(t, placedPayload(first, customer).Lines, got.Lines)

	// A late reservation event never reopens a confirmed order.
	late := mustEnv(t, events.TypeInventoryReleased, events.InventoryReleased{ReservationID: "r-" + first, OrderID: first,
		Reason: events.ReleaseReasonExpired, Lines: []events.StockLine{{SKU: "sku-1", Quantity: 2}}}, uuid.NewString(), now.Add(3*time.Second))
	publish(late)
	require.Eventually(t, func() bool {
		o, err := client.Get(t.Context(), first)
		return err == nil && o.LastEventID == late.ID
	}, 15*time.Second, 20*time.Millisecond)
	got, err = client.Get(t.Context(), first)
	require.NoError(t, err)
	require.Equal(t, events.OrderStatusConfirmed, got.Status)

	// The second order is cancelled before its order.placed arrives.
	publish(mustEnv(t, events.TypeOrderCancelled, events.OrderCancelled{OrderID: second, Reason: "insufficient_stock",
		FailedStep: "reserve-inventory"}, uuid.NewString(), now.Add(5*time.Second)))
	publish(mustEnv(t, events.TypeOrderPlaced, placedPayload(second, customer), uuid.NewString(), now.Add(4*time.Second)))
	require.Eventually(t, func() bool {
		o, err := client.Get(t.Context(), second)
		return err == nil && o.CustomerID == customer
	}, 15*time.Second, 20*time.Millisecond)
	got = waitStatus(second, events.OrderStatusCancelled)
	require.Equal(t, "insufficient_stock", got.FailureReason)
	require.Equal(t, "reserve-inventory", got.FailedStep)

	list, err := client.List(t.Context(), events.OrdersListQuery{CustomerID: customer})
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{second, first}, []string{list[0].OrderID, list[1].OrderID}, "newest first")
	list, err = client.List(t.Context(), events.OrdersListQuery{CustomerID: customer, Status: events.OrderStatusConfirmed})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, first, list[0].OrderID)

	_, err = client.Get(t.Context(), "no-such-order")
	require.ErrorIs(t, err, orders.ErrUnknownOrder)
	var rejected *orders.RejectedError
	require.ErrorAs(t, err, &rejected)
	require.Equal(t, contract.ReasonUnknownOrder, rejected.Reason)

	// An invalid query is refused by the client before it is sent.
	_, err = client.List(t.Context(), events.OrdersListQuery{CustomerID: customer, Limit: events.MaxOrdersListLimit + 1})
	require.ErrorIs(t, err, events.ErrInvalidPayload)
}
