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
