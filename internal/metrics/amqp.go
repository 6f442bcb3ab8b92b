package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagaflow/sagaflow/amqp"
)

// RegisterAMQP registers the publisher and consumer counters of one broker
// connection as sagaflow_amqp_* counters, labelled with the connection's role
// (for example "services" or "orchestration"); sagaflow_amqp_reconnects_total
// is labelled with the node as well.
func RegisterAMQP(reg prometheus.Registerer, role string, stats *amqp.Stats) error {
	counters := []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"published_total", "Messages written to the broker.", &stats.Published},
		{"confirmed_total", "Messages the broker confirmed.", &stats.Confirmed},
		{"nacked_total", "Messages the broker nacked.", &stats.Nacked},
		{"returned_total", "Mandatory messages returned as unroutable.", &stats.Returned},
		{"consumed_total", "Deliveries received by consumers.", &stats.Consumed},
		{"handled_total", "Deliveries whose handler succeeded.", &stats.Handled},
		{"retried_total", "Deliveries sent to a delay queue after a failure.", &stats.Retried},
		{"dead_lettered_total", "Deliveries moved to a dead-letter queue.", &stats.DeadLettered},
		{"duplicates_dropped_total", "Deliveries dropped as duplicates of a handled message id.", &stats.DuplicatesDropped},
	}
	for _, c := range counters {
		v := c.v
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
	return reg.Register(&reconnects{role: role, stats: stats, desc: prometheus.NewDesc(
		"sagaflow_amqp_reconnects_total", "Reconnections after a lost broker connection, by the node (host:port) reached.",
		[]string{"node"}, prometheus.Labels{"connection": role})})
}

// reconnects reports Stats.ReconnectsByNode: one series per node of the
// connection's URL list, 0 until a reconnection reaches it.
type reconnects struct {
	role  string
	stats *amqp.Stats
	desc  *prometheus.Desc
}

func (r *reconnects) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *reconnects) Collect(ch chan<- prometheus.Metric) {
	for node, n := range r.stats.ReconnectsByNode() {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(n), node)
	}
}
