package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagaflow/sagaflow/amqp"
)

// RegisterAMQP registers the publisher and consumer counters of one broker
// connection as sagaflow_amqp_* counters, labelled with the connection's role
// (for example "services" or "orchestration").
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
		{"reconnects_total", "Reconnections after a lost broker connection.", &stats.Reconnects},
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
	return nil
}
