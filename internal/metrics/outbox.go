package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The outbox metrics' names.
const (
	outboxPendingName    = "sagaflow_outbox_pending"
	outboxReadErrorsName = "sagaflow_outbox_pending_read_errors_total"
)

// PendingCounter counts a producer's outbox rows not yet published;
// *store.DB is one.
type PendingCounter interface {
	PendingCount(ctx context.Context, producer string) (int, error)
}

// outboxReadTimeout bounds the count a scrape runs: a database that does
// not answer makes the scrape miss the gauge, not hang.
const outboxReadTimeout = 2 * time.Second

// RegisterOutboxBacklog registers sagaflow_outbox_pending{producer}, the
// rows of the producer's outbox its relay has not published yet, counted
// in db at every scrape: the backlog grows while the broker is away and
// the relay retries, which only the database knows. A count that fails is
// left out of the scrape (the rest of /metrics still answers) and counted
// in sagaflow_outbox_pending_read_errors_total{producer}.
func RegisterOutboxBacklog(reg prometheus.Registerer, producer string, db PendingCounter) error {
	errs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: outboxReadErrorsName, Help: "Scrapes that could not count the outbox backlog, by producer.",
		ConstLabels: prometheus.Labels{"producer": producer},
	})
	if err := reg.Register(errs); err != nil {
		return err
	}
	return reg.Register(&outboxBacklog{producer: producer, db: db, errs: errs, desc: prometheus.NewDesc(
		outboxPendingName, "Outbox rows not yet published by the relay, by producer.", nil, prometheus.Labels{"producer": producer})})
}

type outboxBacklog struct {
	producer string
	db       PendingCounter
	errs     prometheus.Counter
	desc     *prometheus.Desc
}

func (o *outboxBacklog) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o *outboxBacklog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxReadTimeout)
	defer cancel()
	n, err := o.db.PendingCount(ctx, o.producer)
	if err != nil {
		o.errs.Inc()
		return
	}
	ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, float64(n))
}
