package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagaflow/sagaflow/amqp"
)

// amqpCounters are the sagaflow_amqp_* counters of one connection's Stats.
var amqpCounters = []struct {
	name, help string
	v          func(*amqp.Stats) *atomic.Int64
}{
	{"published_total", "Messages written to the broker.", func(s *amqp.Stats) *atomic.Int64 { return &s.Published }},
	{"confirmed_total", "Messages the broker confirmed.", func(s *amqp.Stats) *atomic.Int64 { return &s.Confirmed }},
	{"nacked_total", "Messages the broker nacked.", func(s *amqp.Stats) *atomic.Int64 { return &s.Nacked }},
	{"returned_total", "Mandatory messages returned as unroutable.", func(s *amqp.Stats) *atomic.Int64 { return &s.Returned }},
	{"consumed_total", "Deliveries received by consumers.", func(s *amqp.Stats) *atomic.Int64 { return &s.Consumed }},
	{"handled_total", "Deliveries whose handler succeeded.", func(s *amqp.Stats) *atomic.Int64 { return &s.Handled }},
	{"retried_total", "Deliveries sent to a delay queue after a failure.", func(s *amqp.Stats) *atomic.Int64 { return &s.Retried }},
	{"retried_unavailable_total", "Deliveries retried without an attempt limit because a dependency of their handler was unavailable.", func(s *amqp.Stats) *atomic.Int64 { return &s.RetriedUnavailable }},
	{"dead_lettered_total", "Deliveries moved to a dead-letter queue.", func(s *amqp.Stats) *atomic.Int64 { return &s.DeadLettered }},
	{"duplicates_dropped_total", "Deliveries dropped as duplicates of a handled message id.", func(s *amqp.Stats) *atomic.Int64 { return &s.DuplicatesDropped }},
}

// The names of the sagaflow_amqp_* metrics labelled by more than the
// connection.
const (
	amqpReconnectsName  = "sagaflow_amqp_reconnects_total"
	amqpDeadLettersName = "sagaflow_amqp_consumer_dead_lettered_total"
)

// RegisterAMQP registers the publisher and consumer counters of one broker
// connection as sagaflow_amqp_* counters, labelled with the connection's role
// (for example "services" or "orchestration"); sagaflow_amqp_reconnects_total
// is labelled with the node as well, and
// sagaflow_amqp_consumer_dead_lettered_total with the consumer.
func RegisterAMQP(reg prometheus.Registerer, role string, stats *amqp.Stats) error {
	for _, c := range amqpCounters {
		v := c.v(stats)
		err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace:   "sagaflow",
			Subsystem:   "amqp",
			Name:        c.name,
			Help:        c.help,
			ConstLabels: prometheus.Labels{"connection": role},
		}, func() float64 { return float64(v.Load()) }))
		if err != nil {
			return err
		}
	}
	err := reg.Register(&byLabel{read: stats.DeadLettersByConsumer, desc: prometheus.NewDesc(
		amqpDeadLettersName, "Deliveries moved to a dead-letter queue, by the consumer that gave up on them.",
		[]string{"consumer"}, prometheus.Labels{"connection": role})})
	if err != nil {
		return err
	}
	return reg.Register(&byLabel{read: stats.ReconnectsByNode, desc: prometheus.NewDesc(
		amqpReconnectsName, "Reconnections after a lost broker connection, by the node (host:port) reached.",
		[]string{"node"}, prometheus.Labels{"connection": role})})
}

// byLabel reports a counter split by one label, read from Stats: the
// reconnections by node (every node of the connection's URL list, 0 until
// a reconnection reaches it) or the dead letters by consumer (every
// consumer, 0 until it dead-letters a delivery).
type byLabel struct {
	read func() map[string]int64
	desc *prometheus.Desc
}

func (b *byLabel) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *byLabel) Collect(ch chan<- prometheus.Metric) {
	for label, n := range b.read() {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.CounterValue, float64(n), label)
	}
}
