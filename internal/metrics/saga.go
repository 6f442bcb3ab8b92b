package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagaflow/sagaflow/contract"
)

// sagaDurationBuckets are the buckets of contract.MetricSagaDuration, in
// seconds: from a saga that ends in under a second (refused at its first
// step) to one an operator resolved after a day.
var sagaDurationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}

// sagaMetrics are the saga business metrics. The saga helper
// (workflows.Saga) records them through the workflow's metrics handler,
// the only handler workflow code may use (it drops what a replay records);
// that handler is the worker's TemporalHandler, which hands the names of
// contract.MetricSaga* to these vectors instead of its own generic series:
// they keep their sagaflow_ names, fixed label sets, help texts and, for
// the duration, buckets fit for sagas.
type sagaMetrics struct {
	counters map[string]labelled[*prometheus.CounterVec]
	timers   map[string]labelled[*prometheus.HistogramVec]
}

// labelled is a vector and its label names, read from a handler's tags.
type labelled[V any] struct {
	vec    V
	labels []string
}

// values are the label values of tags, "" for a tag not set.
func (l labelled[V]) values(tags map[string]string) []string {
	v := make([]string, len(l.labels))
	for i, k := range l.labels {
		v[i] = tags[k]
	}
	return v
}

func newSagaMetrics() *sagaMetrics {
	m := &sagaMetrics{
		counters: map[string]labelled[*prometheus.CounterVec]{},
		timers:   map[string]labelled[*prometheus.HistogramVec]{},
	}
	counter := func(name, help string, labels ...string) {
		m.counters[name] = labelled[*prometheus.CounterVec]{prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels), labels}
	}
	counter(contract.MetricSagaStarted, "Sagas started, by saga type.", contract.MetricTagSagaType)
	counter(contract.MetricSagaEnded, "Sagas ended, by saga type and outcome (completed, compensated, cancelled, resolved).",
		contract.MetricTagSagaType, contract.MetricTagOutcome)
	counter(contract.MetricSagaParked, "Sagas parked in CompensationFailed to wait for an operator, by saga type.", contract.MetricTagSagaType)
	counter(contract.MetricSagaCompensations, "Compensations run, by saga type, compensated step and result (succeeded, failed).",
		contract.MetricTagSagaType, contract.MetricTagCompensation, contract.MetricTagResult)
	labels := []string{contract.MetricTagSagaType, contract.MetricTagOutcome}
	m.timers[contract.MetricSagaDuration] = labelled[*prometheus.HistogramVec]{prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: contract.MetricSagaDuration, Help: "Time from a saga's start to its end, by saga type and outcome.", Buckets: sagaDurationBuckets,
	}, labels), labels}
	return m
}

func (m *sagaMetrics) counter(name string, tags map[string]string) (prometheus.Counter, bool) {
	c, ok := m.counters[name]
	if !ok {
		return nil, false
	}
	return c.vec.WithLabelValues(c.values(tags)...), true
}

func (m *sagaMetrics) timer(name string, tags map[string]string) (prometheus.Observer, bool) {
	t, ok := m.timers[name]
	if !ok {
		return nil, false
	}
	return t.vec.WithLabelValues(t.values(tags)...), true
}

func (m *sagaMetrics) collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters {
		c.vec.Collect(ch)
	}
	for _, t := range m.timers {
		t.vec.Collect(ch)
	}
}
