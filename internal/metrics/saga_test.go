package metrics_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/metrics"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

func TestSagaMetricsKeepTheirNamesAndLabels(t *testing.T) {
	h := metrics.NewTemporalHandler("temporal_")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(h))

	// The handler as workflow code gets it: with the tags the SDK adds and
	// the saga type the saga helper adds.
	wf := h.WithTags(map[string]string{"namespace": "default", "task_queue": "sagas"}).
		WithTags(map[string]string{"workflow_type": contract.TransferWorkflowType}).
		WithTags(map[string]string{contract.MetricTagSagaType: contract.TransferWorkflowType})
	wf.Counter(contract.MetricSagaStarted).Inc(1)
	ended := wf.WithTags(map[string]string{contract.MetricTagOutcome: "completed"})
	ended.Counter(contract.MetricSagaEnded).Inc(1)
	ended.Timer(contract.MetricSagaDuration).Record(3 * time.Second)
	wf.WithTags(map[string]string{contract.MetricTagCompensation: contract.StepWithdraw, contract.MetricTagResult: "failed"}).
		Counter(contract.MetricSagaCompensations).Inc(1)
	// An SDK metric beside them keeps its prefix and its tags.
	wf.Counter("workflow_completed").Inc(1)

	expected := `
# HELP sagaflow_saga_started_total Sagas started, by saga type.
# TYPE sagaflow_saga_started_total counter
sagaflow_saga_started_total{saga_type="TransferWorkflow"} 1
# HELP sagaflow_saga_ended_total Sagas ended, by saga type and outcome (completed, compensated, cancelled, resolved).
# TYPE sagaflow_saga_ended_total counter
sagaflow_saga_ended_total{outcome="completed",saga_type="TransferWorkflow"} 1
# HELP sagaflow_saga_compensations_total Compensations run, by saga type, compensated step and result (succeeded, failed).
# TYPE sagaflow_saga_compensations_total counter
sagaflow_saga_compensations_total{compensation="withdraw",result="failed",saga_type="TransferWorkflow"} 1
# HELP temporal_workflow_completed Temporal SDK metric temporal_workflow_completed.
# TYPE temporal_workflow_completed counter
temporal_workflow_completed{namespace="default",saga_type="TransferWorkflow",task_queue="sagas",workflow_type="TransferWorkflow"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		contract.MetricSagaStarted, contract.MetricSagaEnded, contract.MetricSagaCompensations, "temporal_workflow_completed"))

	hist := family(t, reg, contract.MetricSagaDuration).GetMetric()[0].GetHistogram()
	require.EqualValues(t, 1, hist.GetSampleCount())
	require.InDelta(t, 3, hist.GetSampleSum(), 1e-9)
	var bounds []float64
	for _, b := range hist.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	require.Contains(t, bounds, 3600.0, "saga durations are bucketed up to hours, not like SDK timers")
	require.Nil(t, family(t, reg, "temporal_"+contract.MetricSagaStarted), "no prefixed copy")
}

func TestDeadLettersAreCountedByConsumer(t *testing.T) {
	var stats amqp.Stats
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterAMQP(reg, "services", &stats))
	stats.CountDeadLetter("ledger.commands")
	stats.CountDeadLetter("ledger.commands")
	stats.CountDeadLetter("orders.projection")

	expected := `
# HELP sagaflow_amqp_consumer_dead_lettered_total Deliveries moved to a dead-letter queue, by the consumer that gave up on them.
# TYPE sagaflow_amqp_consumer_dead_lettered_total counter
sagaflow_amqp_consumer_dead_lettered_total{connection="services",consumer="ledger.commands"} 2
sagaflow_amqp_consumer_dead_lettered_total{connection="services",consumer="orders.projection"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "sagaflow_amqp_consumer_dead_lettered_total"))
	require.Equal(t, 3.0, gathered(t, reg, "sagaflow_amqp_dead_lettered_total"), "the connection's total still counts them")
}

func TestOutboxBacklogIsCountedAtScrape(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, metrics.RegisterOutboxBacklog(reg, "ledger", db))
		require.NoError(t, metrics.RegisterOutboxBacklog(reg, "inventory", db))
		backlog := func() map[string]float64 {
			t.Helper()
			out := map[string]float64{}
			for _, m := range family(t, reg, "sagaflow_outbox_pending").GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
			return out
		}
		require.Equal(t, map[string]float64{"inventory": 0, "ledger": 0}, backlog())

		require.NoError(t, db.InTx(ctx, func(tx *store.Tx) error {
			return tx.Enqueue(ctx, "ledger", store.OutboxMessage{ID: "m1", RoutingKey: "q"}, store.OutboxMessage{ID: "m2", RoutingKey: "q"})
		}))
		require.Equal(t, map[string]float64{"inventory": 0, "ledger": 2}, backlog(), "a scrape reads the store, by producer")

		relay, err := store.NewRelay(db, okPublisher{}, store.RelayConfig{Producer: "ledger"})
		require.NoError(t, err)
		n, err := relay.Flush(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, map[string]float64{"inventory": 0, "ledger": 0}, backlog(), "published rows leave the backlog")
	})
}

func TestOutboxBacklogThatCannotBeReadIsLeftOutAndCounted(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterOutboxBacklog(reg, "ledger", failingCounter{}))
	require.Nil(t, family(t, reg, "sagaflow_outbox_pending"), "no made-up value")
	// Each scrape counts its failure; the counter is gathered beside the
	// backlog, so it shows this scrape's failure or only the previous one's.
	require.GreaterOrEqual(t, gathered(t, reg, "sagaflow_outbox_pending_read_errors_total"), 1.0)
}

// TestNamesListsEverySeries checks metrics.Names against what the
// registries really expose once every metric has a value: the dashboard
// test trusts Names.
func TestNamesListsEverySeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	var stats amqp.Stats
	require.NoError(t, metrics.RegisterAMQP(reg, "worker", &stats))
	stats.CountReconnect("rabbit:5672")
	stats.CountDeadLetter("c")
	require.NoError(t, metrics.RegisterOutboxBacklog(reg, "ok", zeroCounter{}))
	require.NoError(t, metrics.RegisterOutboxBacklog(reg, "failing", failingCounter{}))
	h := metrics.NewTemporalHandler("temporal_")
	require.NoError(t, reg.Register(h))
	for _, name := range []string{contract.MetricSagaStarted, contract.MetricSagaEnded, contract.MetricSagaParked, contract.MetricSagaCompensations} {
		h.Counter(name).Inc(1)
	}
	h.Timer(contract.MetricSagaDuration).Record(time.Second)

	// Twice: the read errors counter is gathered beside the backlog that
	// counts them, so it may show only on the second scrape.
	_, err := reg.Gather()
	require.NoError(t, err)
	families, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "sagaflow_") {
			continue
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			names = append(names, f.GetName()+"_bucket", f.GetName()+"_sum", f.GetName()+"_count")
			continue
		}
		names = append(names, f.GetName())
	}
	slices.Sort(names)
	require.Equal(t, names, metrics.Names())
}

func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

type okPublisher struct{}

func (okPublisher) Publish(context.Context, store.OutboxMessage) error        { return nil }
func (okPublisher) PublishBatch(context.Context, []store.OutboxMessage) error { return nil }

type failingCounter struct{}

func (failingCounter) PendingCount(context.Context, string) (int, error) {
	return 0, errors.New("database is down")
}

type zeroCounter struct{}

func (zeroCounter) PendingCount(context.Context, string) (int, error) { return 0, nil }
