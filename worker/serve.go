package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/bridge"
	"github.com/sagaflow/sagaflow/internal/metrics"
	"github.com/sagaflow/sagaflow/internal/notifications"
	"github.com/sagaflow/sagaflow/internal/redact"
	"github.com/sagaflow/sagaflow/internal/tracing"
	"github.com/sagaflow/sagaflow/services/inventory"
	"github.com/sagaflow/sagaflow/services/ledger"
	"github.com/sagaflow/sagaflow/services/orders"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/workflows"
)

// part is one thing the worker runs until its context ends.
type part struct {
	name string
	run  func(ctx context.Context) error
}

// process holds what the parts share: one broker connection, one Temporal
// client (when a part needs it), one set of activities (when workflows or
// replies run), the metrics registry and the logger.
type process struct {
	cfg      config
	logger   *slog.Logger
	conn     *amqp.Conn
	temporal client.Client
	acts     *activities.Activities
	registry *prometheus.Registry
	closers  []func() error
	// versionPending is true while a versioned workflows part waits for
	// the server to list its deployment version: until then the worker
	// is not healthy.
	versionPending atomic.Bool
}

func serve(ctx context.Context, cfg config, logger *slog.Logger) error {
	// Tracing outlives every part, so that Shutdown flushes their last spans.
	tr, err := tracing.Setup(ctx, cfg.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Shutdown(fctx); err != nil {
			logger.Warn("tracing shutdown", "error", err)
		}
	}()
	p := &process{cfg: cfg, logger: logger, registry: prometheus.NewRegistry()}
	defer p.close()
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// No prefix: the SDK's metric names start with temporal_ already.
	temporalMetrics := metrics.NewTemporalHandler("")
	p.registry.MustRegister(temporalMetrics)

	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var conn *amqp.Conn
	conn, err = amqp.Dial(dialCtx, amqp.Config{
		URL:            cfg.AMQPURL,
		QueueType:      cfg.AMQPQueueType,
		DeliveryLimit:  cfg.AMQPDeliveryLimit,
		Heartbeat:      cfg.AMQPHeartbeat,
		TLS:            amqp.TLSConfig{CAFile: cfg.AMQPTLSCA, CertFile: cfg.AMQPTLSCert, KeyFile: cfg.AMQPTLSKey},
		ConnectionName: "sagaflow-worker " + strings.Join(cfg.Parts, ","),
		Exchange:       cfg.AMQPExchange,
		Logger:         logger.With("component", "amqp"),
	})
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ at %s: %w", amqp.RedactURLs(cfg.AMQPURL), err)
	}
	p.conn = conn
	p.closers = append(p.closers, conn.Close)
	if err := metrics.RegisterAMQP(p.registry, "worker", conn.Stats()); err != nil {
		return err
	}
	if cfg.has(partWorkflows) {
		if err := registerSettings(p.registry, cfg); err != nil {
			return err
		}
	}

	if cfg.has(partWorkflows) || cfg.has(partReplies) || cfg.has(partBridge) {
		tc, err := dialTemporal(cfg, logger, temporalMetrics, tr.ClientInterceptors())
		if err != nil {
			return err
		}
		p.temporal = tc
		p.closers = append(p.closers, func() error { tc.Close(); return nil })
	}

	var parts []part
	for _, build := range []struct {
		name  string
		build func(context.Context) (part, error)
	}{
		{partLedger, p.ledger},
		{partInventory, p.inventory},
		{partProjection, p.projection},
		{partWorkflows, p.workflows},
		{partReplies, p.replies},
		{partBridge, p.bridge},
		{partNotifications, p.notifications},
	} {
		if !cfg.has(build.name) {
			continue
		}
		pt, err := build.build(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", build.name, err)
		}
		parts = append(parts, pt)
	}

	if cfg.HTTPAddr != "" {
		srv, err := p.httpServer()
		if err != nil {
			return err
		}
		parts = append(parts, srv)
	}
	logger.Info("worker started", "parts", cfg.Parts, "task_queue", cfg.TaskQueue,
		"temporal", cfg.TemporalAddress, "namespace", cfg.TemporalNamespace, "deployment", cfg.Versioning.DeploymentName, "build_id", cfg.Versioning.BuildID,
		"amqp", amqp.RedactURLs(cfg.AMQPURL), "amqp_node", conn.Node(), "amqp_queue_type", cfg.AMQPQueueType, "exchange", cfg.AMQPExchange, "http", cfg.HTTPAddr)
	err = runParts(ctx, parts, logger)
	logger.Info("worker stopped")
	return err
}

// runParts runs every part until ctx ends or one fails, then stops the others
// and waits for them: each part finishes its in-flight work as it returns.
func runParts(ctx context.Context, parts []part, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, pt := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pt.run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				errs[i] = fmt.Errorf("%s: %w", pt.name, err)
				logger.Error("part failed; stopping the worker", "part", pt.name, "error", err)
			}
			cancel()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			p.logger.Warn("close", "error", err)
		}
	}
}

// openStore opens a service's database, creating the directory of a SQLite
// file when needed.
func (p *process) openStore(ctx context.Context, dsn string) (*store.DB, error) {
	if !strings.Contains(dsn, "://") {
		if dir := filepath.Dir(strings.TrimPrefix(dsn, "file:")); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redact.URL(dsn), err)
	}
	p.closers = append(p.closers, db.Close)
	return db, nil
}

// migrateTimeout bounds a service's schema migration at start: a worker
// that cannot migrate (a database that does not answer, a migration lock
// another process never releases) fails and says so instead of never
// becoming ready.
const migrateTimeout = time.Minute

// migrate applies a service's schema migrations under the start context.
func migrate(ctx context.Context, svc interface{ Migrate(context.Context) error }) error {
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	return svc.Migrate(ctx)
}

// relayConfig is the outbox relay's configuration of a service: the
// retention of its outbox and inbox rows.
func (p *process) relayConfig(service string) store.RelayConfig {
	return store.RelayConfig{
		Retention:      p.cfg.OutboxRetention,
		InboxRetention: p.cfg.InboxRetention,
		Logger:         p.logger.With("component", service),
	}
}

func (p *process) ledger(ctx context.Context) (part, error) {
	db, err := p.openStore(ctx, p.cfg.LedgerDSN)
	if err != nil {
		return part{}, err
	}
	svc, err := ledger.New(db, ledger.Config{Exchange: p.cfg.AMQPExchange, Relay: p.relayConfig(ledger.ServiceName)})
	if err != nil {
		return part{}, err
	}
	if err := migrate(ctx, svc); err != nil {
		return part{}, err
	}
	if err := metrics.RegisterOutboxBacklog(p.registry, ledger.ServiceName, db); err != nil {
		return part{}, err
	}
	return part{partLedger, func(ctx context.Context) error { return svc.Run(ctx, p.conn) }}, nil
}

func (p *process) inventory(ctx context.Context) (part, error) {
	db, err := p.openStore(ctx, p.cfg.InventoryDSN)
	if err != nil {
		return part{}, err
	}
	svc, err := inventory.New(db, inventory.Config{Exchange: p.cfg.AMQPExchange, Relay: p.relayConfig(inventory.ServiceName)})
	if err != nil {
		return part{}, err
	}
	if err := migrate(ctx, svc); err != nil {
		return part{}, err
	}
	if err := metrics.RegisterOutboxBacklog(p.registry, inventory.ServiceName, db); err != nil {
		return part{}, err
	}
	return part{partInventory, func(ctx context.Context) error { return svc.Run(ctx, p.conn) }}, nil
}

func (p *process) projection(ctx context.Context) (part, error) {
	db, err := p.openStore(ctx, p.cfg.OrdersDSN)
	if err != nil {
		return part{}, err
	}
	proj, err := orders.New(db, orders.Config{
		AppliedEventsRetention: p.cfg.AppliedEventsRetention,
		Logger:                 p.logger.With("component", orders.ServiceName),
	})
	if err != nil {
		return part{}, err
	}
	if err := migrate(ctx, proj); err != nil {
		return part{}, err
	}
	return part{partProjection, func(ctx context.Context) error { return proj.Run(ctx, p.conn) }}, nil
}

func (p *process) bridge(context.Context) (part, error) {
	b, err := bridge.New(p.temporal, bridge.Config{TaskQueue: p.cfg.TaskQueue})
	if err != nil {
		return part{}, err
	}
	return part{partBridge, func(ctx context.Context) error { return b.Run(ctx, p.conn) }}, nil
}

// activities returns the process's activities, built with their publisher on
// first use: the workflows part runs them and the replies part completes
// them, and a worker running both needs one of each.
func (p *process) activities() (*activities.Activities, error) {
	if p.acts != nil {
		return p.acts, nil
	}
	pub, err := p.conn.NewPublisher(amqp.PublisherConfig{})
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, pub.Close)
	acts, err := activities.New(activities.Config{ReplyQueue: p.cfg.ReplyQueue, Exchange: p.cfg.AMQPExchange}, pub, p.temporal, p.logger.With("component", "activities"))
	if err != nil {
		return nil, err
	}
	p.acts = acts
	return acts, nil
}

func (p *process) workflows(context.Context) (part, error) {
	acts, err := p.activities()
	if err != nil {
		return part{}, err
	}
	interceptors, err := p.faultInjector()
	if err != nil {
		return part{}, err
	}
	// The command steps the workflows run as local activities wait for
	// their replies here, on this process's own reply queue.
	req, err := p.conn.NewRequester(amqp.RequesterConfig{ReplyQueuePrefix: contract.LocalReplyQueuePrefix})
	if err != nil {
		return part{}, err
	}
	p.closers = append(p.closers, req.Close)
	w := worker.New(p.temporal, p.cfg.TaskQueue, workerOptions(p.cfg, interceptors))
	workflows.Register(w)
	w.RegisterActivity(activities.WithRequester(acts, req))
	v := p.cfg.Versioning
	if v.Enabled() {
		p.versionPending.Store(true)
	}
	return part{partWorkflows, func(ctx context.Context) error {
		if err := w.Start(); err != nil {
			return fmt.Errorf("start Temporal worker on task queue %s: %w", p.cfg.TaskQueue, err)
		}
		defer w.Stop()
		if v.Enabled() {
			current, err := registerVersion(ctx, p.temporal, p.cfg.TaskQueue, v, p.logger)
			if err != nil {
				return err
			}
			p.versionPending.Store(false)
			p.logger.Info("polling as a Worker Deployment version", "deployment", v.DeploymentName, "build_id", v.BuildID, "current", current)
		}
		<-ctx.Done()
		return nil
	}}, nil
}

func (p *process) replies(context.Context) (part, error) {
	acts, err := p.activities()
	if err != nil {
		return part{}, err
	}
	cs, err := p.conn.NewConsumer(replyConsumerConfig(p.cfg), acts.HandleReply)
	if err != nil {
		return part{}, err
	}
	return part{partReplies, cs.Run}, nil
}

// replyConsumerConfig configures the consumer of the reply queue.
func replyConsumerConfig(cfg config) amqp.ConsumerConfig {
	c := activities.ReplyConsumerConfig(cfg.ReplyQueue)
	c.ShutdownTimeout = cfg.ShutdownGrace
	return c
}

func (p *process) notifications(context.Context) (part, error) {
	cfg := notifications.ConsumerConfig()
	cfg.ShutdownTimeout = p.cfg.ShutdownGrace
	cs, err := p.conn.NewConsumer(cfg, notifications.Handler(p.logger.With("component", "notifications")))
	if err != nil {
		return part{}, err
	}
	return part{partNotifications, cs.Run}, nil
}

// httpServer serves /metrics and /healthz. Healthy means: connected to the
// broker with every consumer consuming (so its queues exist and are bound),
// and, when a part uses it, Temporal answering.
func (p *process) httpServer() (part, error) {
	ln, err := net.Listen("tcp", p.cfg.HTTPAddr)
	if err != nil {
		return part{}, fmt.Errorf("listen on %s for /metrics and /healthz: %w", p.cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: p.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
	return part{"http", func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shutdownCtx)
		}
	}}, nil
}

// httpHandler routes /metrics, /healthz and, with --pprof, /debug/pprof/.
func (p *process) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	if p.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		var problems []string
		if !p.conn.Connected() {
			problems = append(problems, "rabbitmq: not connected")
		} else if waiting := p.conn.NotConsuming(); len(waiting) > 0 {
			problems = append(problems, "rabbitmq: not consuming yet: "+strings.Join(waiting, ", "))
		}
		if p.versionPending.Load() {
			problems = append(problems, "temporal: Worker Deployment version "+p.cfg.Versioning.String()+" not registered yet")
		}
		if p.temporal != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if _, err := p.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
				problems = append(problems, "temporal: "+err.Error())
			}
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(problems, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
