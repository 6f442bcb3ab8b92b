package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/metrics"
)

func TestTemporalHandlerPadsLabelSetsOfOneFamily(t *testing.T) {
	h := metrics.NewTemporalHandler("temporal_")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(h))

	// The SDK uses one name with different tag sets; both must be exposed.
	h.WithTags(map[string]string{"namespace": "default"}).Counter("request").Inc(2)
	h.WithTags(map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"}).Counter("request").Inc(3)
	h.Gauge("num_pollers").Update(4)
	h.WithTags(map[string]string{"activity_type": "Withdraw"}).Timer("activity-execution-latency").Record(30 * time.Millisecond)

	expected := `
# HELP temporal_request Temporal SDK metric temporal_request.
# TYPE temporal_request counter
temporal_request{namespace="default",operation=""} 2
temporal_request{namespace="default",operation="StartWorkflowExecution"} 3
# HELP temporal_num_pollers Temporal SDK metric temporal_num_pollers.
# TYPE temporal_num_pollers gauge
temporal_num_pollers 4
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "temporal_request", "temporal_num_pollers"))

	families, err := reg.Gather()
	require.NoError(t, err)
	var found bool
	for _, f := range families {
		if f.GetName() == "temporal_activity_execution_latency" {
			found = true
			h := f.GetMetric()[0].GetHistogram()
			require.Equal(t, uint64(1), h.GetSampleCount())
			require.InDelta(t, 0.03, h.GetSampleSum(), 1e-9)
		}
	}
	require.True(t, found, "timer exposed as a histogram with a sanitized name")
}

func TestTemporalHandlersWithEqualTagsShareASeries(t *testing.T) {
	h := metrics.NewTemporalHandler("")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(h))

	// The SDK derives a handler per task and asks it for the counter on
	// each record: every one of them adds to the same series.
	for range 3 {
		tagged := h.WithTags(map[string]string{"task-queue": "sagas"})
		tagged.Counter("temporal_request").Inc(1)
		tagged.Counter("temporal_request").Inc(1)
	}
	h.WithTags(map[string]string{"task-queue": "other"}).Counter("temporal_request").Inc(5)
	h.Counter("temporal.request").Inc(7)

	expected := `
# HELP temporal_request Temporal SDK metric temporal_request.
# TYPE temporal_request counter
temporal_request{task_queue=""} 7
temporal_request{task_queue="other"} 5
temporal_request{task_queue="sagas"} 6
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "temporal_request"))
}

// BenchmarkTemporalHandlerCounter is the SDK's way of counting: a handler
// with tags, asked for its counter at every increment.
func BenchmarkTemporalHandlerCounter(b *testing.B) {
	h := metrics.NewTemporalHandler("").WithTags(map[string]string{"namespace": "default", "task_queue": "sagas", "worker_type": "WorkflowWorker"})
	b.ReportAllocs()
	for b.Loop() {
		h.Counter("temporal_request").Inc(1)
		h.Timer("temporal_request_latency").Record(time.Millisecond)
	}
}

// BenchmarkTemporalHandlerPerTask is the SDK's other way of counting: a
// handler derived with WithTags for one task, recording once.
func BenchmarkTemporalHandlerPerTask(b *testing.B) {
	h := metrics.NewTemporalHandler("").WithTags(map[string]string{"namespace": "default", "task_queue": "sagas"})
	tags := map[string]string{"workflow_type": "OrderWorkflow"}
	b.ReportAllocs()
	for b.Loop() {
		h.WithTags(tags).Counter("temporal_workflow_task_queue_poll_succeed").Inc(1)
	}
}

func TestRegisterAMQPExposesCounters(t *testing.T) {
	var stats amqp.Stats
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterAMQP(reg, "services", &stats))
	stats.Published.Add(5)
	stats.DeadLettered.Add(1)
	require.Equal(t, 5.0, gathered(t, reg, "sagaflow_amqp_published_total"))
	require.Equal(t, 1.0, gathered(t, reg, "sagaflow_amqp_dead_lettered_total"))
	require.Error(t, metrics.RegisterAMQP(reg, "services", &stats), "registering the same role twice is refused")
}

func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}
