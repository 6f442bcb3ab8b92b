package metrics

import (
	"maps"
	"slices"
)

// Names returns the name of every sagaflow_* series the worker can expose,
// as Prometheus stores it (a histogram as its _bucket, _sum and _count
// series), sorted: what a dashboard may query. The Temporal SDK's own
// metrics (temporal_*) are not listed; the SDK names them.
func Names() []string {
	names := map[string]struct{}{
		amqpReconnectsName: {}, amqpDeadLettersName: {},
		outboxPendingName: {}, outboxReadErrorsName: {},
	}
	for _, c := range amqpCounters {
		names["sagaflow_amqp_"+c.name] = struct{}{}
	}
	sagas := newSagaMetrics()
	for name := range sagas.counters {
		names[name] = struct{}{}
	}
	for name := range sagas.timers {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[name+suffix] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(names))
}

// sdkHistograms are the Temporal SDK's task latencies the dashboard
// charts, as the worker exposes them.
var sdkHistograms = []string{
	"temporal_workflow_task_schedule_to_start_latency",
	"temporal_workflow_task_execution_latency",
	"temporal_activity_schedule_to_start_latency",
	"temporal_activity_execution_latency",
	"temporal_workflow_endtoend_latency",
}

// SDKNames returns the series of the Temporal SDK's metrics a dashboard may
// query, as Names does for sagaflow_*: the SDK names them, and a test
// running sagas on a dev server checks that the worker's handler exposes
// every one.
func SDKNames() []string {
	var names []string
	for _, h := range sdkHistograms {
		names = append(names, h+"_bucket", h+"_sum", h+"_count")
	}
	slices.Sort(names)
	return names
}
