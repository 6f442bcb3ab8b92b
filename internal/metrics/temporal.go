// Package metrics exposes the worker's metrics to Prometheus: the Temporal
// SDK's own metrics and the saga business metrics through a
// client.MetricsHandler, the RabbitMQ publisher and consumer counters, and
// the outbox backlog of the participant services.
package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// TemporalHandler is a client.MetricsHandler that records the Temporal SDK's
// metrics (counters, gauges, timers as histograms in seconds) and exposes them
// as a prometheus.Collector.
//
// The SDK creates metrics by name with tags that differ from call site to
// call site, which a plain prometheus.CounterVec cannot take (its label names
// are fixed). The handler keeps one series per (name, tags) and, when
// collected, pads each family to the union of its label names, as Prometheus
// requires.
//
// The saga business metrics (contract.MetricSaga*, recorded by the saga
// helper through the workflow's metrics handler) are not prefixed: they
// are exposed under their own names with fixed labels (see sagaMetrics).
type TemporalHandler struct {
	reg  *series
	tags map[string]string

	// labels (the sanitized tags) and key (their series key) are worked
	// out once per handler, on its first metric: the SDK asks a handler
	// for a counter or timer each time it records one, several times per
	// task, and derives new handlers with WithTags that often never
	// record at all.
	once   sync.Once
	labels map[string]string
	key    string
}

var _ client.MetricsHandler = (*TemporalHandler)(nil)
var _ prometheus.Collector = (*TemporalHandler)(nil)

// NewTemporalHandler returns a handler whose metric names get prefix,
// sanitized for Prometheus. The SDK's names start with "temporal_"
// already (temporal_workflow_task_execution_latency), so the worker uses
// no prefix.
func NewTemporalHandler(prefix string) *TemporalHandler {
	return &TemporalHandler{reg: &series{prefix: prefix, families: map[string]*family{}, sagas: newSagaMetrics()}}
}

// WithTags returns a handler adding tags to every metric it creates.
func (h *TemporalHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	maps.Copy(merged, tags)
	return &TemporalHandler{reg: h.reg, tags: merged}
}

// Counter returns the counter of that name and this handler's tags.
func (h *TemporalHandler) Counter(name string) client.MetricsCounter {
	if c, ok := h.reg.sagas.counter(name, h.tags); ok {
		return counterFunc(func(d int64) { c.Add(float64(d)) })
	}
	return (*sampleCounter)(h.sample(name, prometheus.CounterValue))
}

// Gauge returns the gauge of that name and this handler's tags.
func (h *TemporalHandler) Gauge(name string) client.MetricsGauge {
	return (*sampleGauge)(h.sample(name, prometheus.GaugeValue))
}

// Timer returns a histogram (in seconds) of that name and this handler's tags.
func (h *TemporalHandler) Timer(name string) client.MetricsTimer {
	if o, ok := h.reg.sagas.timer(name, h.tags); ok {
		return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
	}
	return (*sampleTimer)(h.sample(name, prometheus.UntypedValue))
}

// sample is the series of that name and this handler's tags.
func (h *TemporalHandler) sample(name string, kind prometheus.ValueType) *sample {
	h.once.Do(func() {
		// h.tags is the handler's own copy, never changed: with every
		// name already valid (the SDK's tags) it serves as the labels.
		h.labels = h.tags
		for k := range h.tags {
			if sanitize(k) != k {
				h.labels = make(map[string]string, len(h.tags))
				for k, v := range h.tags {
					h.labels[sanitize(k)] = v
				}
				break
			}
		}
		h.key = labelKey(h.labels)
	})
	return h.reg.get(name, kind, h.labels, h.key)
}

// Describe sends nothing: the metric set grows as the SDK creates metrics,
// so the handler is an unchecked collector.
func (h *TemporalHandler) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series, each family padded to its union of labels.
func (h *TemporalHandler) Collect(ch chan<- prometheus.Metric) {
	h.reg.collect(ch)
	h.reg.sagas.collect(ch)
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

// sampleCounter, sampleGauge and sampleTimer are a sample as the SDK's
// counter, gauge and timer: pointers, so handing one out allocates
// nothing.
type (
	sampleCounter sample
	sampleGauge   sample
	sampleTimer   sample
)

func (s *sampleCounter) Inc(d int64)          { (*sample)(s).add(float64(d)) }
func (s *sampleGauge) Update(v float64)       { (*sample)(s).set(v) }
func (s *sampleTimer) Record(d time.Duration) { (*sample)(s).observe(d.Seconds()) }

// timerBuckets are the histogram buckets of timers, in seconds: from 1ms
// (a local activity) to 60s (a long poll).
var timerBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

type series struct {
	prefix   string
	mu       sync.Mutex
	families map[string]*family
	sagas    *sagaMetrics
}

type family struct {
	name   string
	kind   prometheus.ValueType // UntypedValue marks a histogram
	series map[string]*sample
}

type sample struct {
	mu      sync.Mutex
	labels  map[string]string
	value   float64
	count   uint64
	sum     float64
	buckets []uint64
}

func (s *sample) add(d float64) { s.mu.Lock(); s.value += d; s.mu.Unlock() }
func (s *sample) set(v float64) { s.mu.Lock(); s.value = v; s.mu.Unlock() }

func (s *sample) observe(v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.sum += v
	for i, upper := range timerBuckets {
		if v <= upper {
			s.buckets[i]++
		}
	}
}

// get returns the sample of name with labels (sanitized, as key
// identifies them), creating it on first use; the sample keeps labels,
// which must not change afterwards.
func (r *series) get(name string, kind prometheus.ValueType, labels map[string]string, key string) *sample {
	if r.prefix != "" {
		name = r.prefix + name
	}
	name = sanitize(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.families[name]
	if !ok {
		f = &family{name: name, kind: kind, series: map[string]*sample{}}
		r.families[name] = f
	}
	s, ok := f.series[key]
	if !ok {
		s = &sample{labels: labels}
		if kind == prometheus.UntypedValue {
			s.buckets = make([]uint64, len(timerBuckets))
		}
		f.series[key] = s
	}
	return s
}

func (r *series) collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	families := slices.Collect(maps.Values(r.families))
	r.mu.Unlock()
	for _, f := range families {
		r.mu.Lock()
		samples := slices.Collect(maps.Values(f.series))
		r.mu.Unlock()
		names := map[string]struct{}{}
		for _, s := range samples {
			for k := range s.labels {
				names[k] = struct{}{}
			}
		}
		labelNames := slices.Sorted(maps.Keys(names))
		desc := prometheus.NewDesc(f.name, "Temporal SDK metric "+f.name+".", labelNames, nil)
		for _, s := range samples {
			values := make([]string, len(labelNames))
			for i, k := range labelNames {
				values[i] = s.labels[k]
			}
			s.mu.Lock()
			var m prometheus.Metric
			var err error
			if f.kind == prometheus.UntypedValue {
				buckets := make(map[float64]uint64, len(timerBuckets))
				for i, upper := range timerBuckets {
					buckets[upper] = s.buckets[i]
				}
				m, err = prometheus.NewConstHistogram(desc, s.count, s.sum, buckets, values...)
			} else {
				m, err = prometheus.NewConstMetric(desc, f.kind, s.value, values...)
			}
			s.mu.Unlock()
			if err == nil {
				ch <- m
			}
		}
	}
}

func labelKey(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	var buf [8]string // the SDK's handlers have a few tags: sorted on the stack
	keys := buf[:0]
	size := 0
	for k, v := range labels {
		keys = append(keys, k)
		size += len(k) + len(v) + 2
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(size)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// sanitize maps a Temporal metric or tag name onto Prometheus' alphabet.
// A name already in it (every SDK name) is returned as it is, without a
// copy.
func sanitize(s string) string {
	i := 0
	for i < len(s) && promNameByte(i, s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if !promNameByte(i, b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

// promNameByte reports whether c may stand at position i of a Prometheus
// metric or label name.
func promNameByte(i int, c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
}
