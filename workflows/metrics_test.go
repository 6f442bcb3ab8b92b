package workflows

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/metrics"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// TestSagaMetricsOnTheDevServer runs sagas on the dev server through a
// client with the worker's metrics handler and checks the saga metrics by
// type and outcome: an order confirmed, an order whose payment is refused,
// an order the customer cancels, a transfer on its own, and an order whose
// refund fails, parks the saga
// and succeeds when an operator retries it. Before that retry the worker's
// cache is purged, so the order is rebuilt by replaying its history; the
// replay counts nothing again.
func TestSagaMetricsOnTheDevServer(t *testing.T) {
	handler := metrics.NewTemporalHandler("")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(handler))
	c, err := client.NewClientFromExisting(temporaltest.Client(t), client.Options{
		MetricsHandler: handler,
		Logger:         tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	acts := &operatorStandIns{reserveGate: newGate(), withdrawGate: newGate()}
	queue := temporaltest.TaskQueue(t)
	w := worker.New(c, queue, worker.Options{})
	Register(w)
	w.RegisterActivity(acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	t.Cleanup(func() {
		// Let a held activity return so the worker can stop.
		select {
		case <-acts.reserveGate.open:
		default:
			close(acts.reserveGate.open)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	order := func(id string, mutate func(*events.OrderPlaced)) client.WorkflowRun {
		o := testOrder
		o.OrderID = fmt.Sprintf("metrics-%s-%s", id, queue)
		mutate(&o)
		run, err := c.ExecuteWorkflow(ctx, contract.OrderStartOptions(o, queue), OrderWorkflow, o)
		require.NoError(t, err)
		return run
	}
	wantOrder := func(run client.WorkflowRun, want contract.OrderOutcome) {
		t.Helper()
		var res contract.OrderResult
		require.NoError(t, run.Get(ctx, &res))
		require.Equal(t, want, res.Outcome, res.Error)
	}

	wantOrder(order("confirmed", func(*events.OrderPlaced) {}), contract.OrderConfirmed)
	wantOrder(order("refused", func(o *events.OrderPlaced) {
		o.Lines = []events.OrderLine{{SKU: "sku-a", Quantity: 3, UnitPrice: 5000}}
		o.Total = 15000
	}), contract.OrderCancelled)

	// The customer cancels while the stock is being reserved.
	cancelled := order("cancelled", func(o *events.OrderPlaced) {
		o.Lines = []events.OrderLine{{SKU: "slow-reserve", Quantity: 1, UnitPrice: 2500}}
	})
	acts.reserveGate.waitStarted(t, "the reserve")
	require.NoError(t, c.SignalWorkflow(ctx, cancelled.GetID(), "", contract.SignalCancel, contract.CancelRequest{Reason: "changed my mind"}))
	close(acts.reserveGate.open)
	wantOrder(cancelled, contract.OrderCancelled)

	in := contract.TransferInput{TransferID: "metrics-" + queue, SourceAccountID: "alice", TargetAccountID: "bob", Amount: 500, Currency: "EUR"}
	trun, err := c.ExecuteWorkflow(ctx, contract.TransferStartOptions(in.TransferID, queue), TransferWorkflow, in)
	require.NoError(t, err)
	var tres contract.TransferResult
	require.NoError(t, trun.Get(ctx, &tres))
	require.Equal(t, contract.TransferCompleted, tres.Outcome)

	// The commit is refused and the first refund too: the order parks.
	parked := order("parked", func(o *events.OrderPlaced) { o.MerchantID = "broke-shop"; o.OrderID += "-uncommittable" })
	waitSagaStatus(ctx, t, c, parked.GetID(), contract.StatusCompensationFailed)
	misses := sum(t, reg, "temporal_sticky_cache_miss", nil)
	worker.PurgeStickyWorkflowCache()
	require.NoError(t, c.SignalWorkflow(ctx, parked.GetID(), "", contract.SignalRetryCompensation,
		contract.OperatorAction{Operator: "ops@example.com", Reason: "merchant account topped up"}))
	wantOrder(parked, contract.OrderCancelled)
	require.Greater(t, sum(t, reg, "temporal_sticky_cache_miss", nil), misses,
		"the parked order was rebuilt from its history after the purge")

	const (
		orderType    = contract.OrderWorkflowType
		transferType = contract.TransferWorkflowType
		succeeded    = string(contract.CompensationSucceeded)
		failed       = string(contract.CompensationFailed)
		completed    = "completed"
		compensated  = "compensated"
		started      = contract.MetricSagaStarted
		ended        = contract.MetricSagaEnded
		compensation = contract.MetricSagaCompensations
	)
	type labels = map[string]string
	for _, tc := range []struct {
		name   string
		labels labels
		want   float64
	}{
		// Four orders, holding their stock themselves
		// (OwnHoldChange): no reservation saga; the payments of the three
		// that got that far, the transfer alone, and the parked order's
		// two refunds.
		{started, labels{"saga_type": orderType}, 4},
		{started, labels{"saga_type": contract.ReservationWorkflowType}, 0},
		{started, labels{"saga_type": transferType}, 6},

		{ended, labels{"saga_type": orderType, "outcome": completed}, 1},
		{ended, labels{"saga_type": orderType, "outcome": compensated}, 2},
		{ended, labels{"saga_type": orderType, "outcome": "cancelled"}, 1},
		// The refused payment and the parked order's first refund withdraw
		// nothing: they end compensated.
		{ended, labels{"saga_type": transferType, "outcome": completed}, 4},
		{ended, labels{"saga_type": transferType, "outcome": compensated}, 2},
		{ended, labels{"outcome": "cancelled"}, 1},
		{ended, labels{"outcome": "resolved"}, 0},

		{contract.MetricSagaParked, labels{"saga_type": orderType}, 1},
		{contract.MetricSagaParked, nil, 1},

		{compensation, labels{"saga_type": orderType, "compensation": contract.StepOrderReserve, "result": succeeded}, 3},
		{compensation, labels{"saga_type": orderType, "compensation": contract.StepOrderPayment, "result": failed}, 1},
		{compensation, labels{"saga_type": orderType, "compensation": contract.StepOrderPayment, "result": succeeded}, 1},
		{compensation, labels{"saga_type": transferType}, 0},
	} {
		require.Equal(t, tc.want, sum(t, reg, tc.name, tc.labels), "%s%v", tc.name, tc.labels)
	}

	// Every end has its duration, under the same labels.
	for _, m := range metricFamily(t, reg, contract.MetricSagaDuration).GetMetric() {
		l := labelMap(m)
		h := m.GetHistogram()
		require.Equal(t, sum(t, reg, ended, l), float64(h.GetSampleCount()), "durations of %v", l)
		require.Positive(t, h.GetSampleSum(), "durations of %v", l)
	}
	require.Len(t, metricFamily(t, reg, contract.MetricSagaDuration).GetMetric(), 5, "two saga types, each completed and compensated, and the cancelled order")

	// The SDK's task latencies the dashboard charts are exposed by the
	// worker's handler under the names it queries.
	exposed := map[string]bool{}
	for _, f := range gatherAll(t, reg) {
		exposed[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			exposed[f.GetName()+"_bucket"], exposed[f.GetName()+"_sum"], exposed[f.GetName()+"_count"] = true, true, true
		}
	}
	for _, name := range metrics.SDKNames() {
		require.True(t, exposed[name], "%s not exposed; exposed: %v", name, slices.Sorted(maps.Keys(exposed)))
	}
}

func gatherAll(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	return families
}

func metricFamily(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	for _, f := range gatherAll(t, reg) {
		if f.GetName() == name {
			return f
		}
	}
	return &dto.MetricFamily{}
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// sum adds the counters of the family whose labels include want.
func sum(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	var total float64
	for _, m := range metricFamily(t, reg, name).GetMetric() {
		l := labelMap(m)
		match := true
		for k, v := range want {
			match = match && l[k] == v
		}
		if match {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}
