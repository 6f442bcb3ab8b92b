// Package bridge turns events on RabbitMQ into Temporal workflow starts and
// signals: an order.placed event starts the order saga, an
// order.cancel_requested event signals it. Which event does what is declared
// in one route table (DefaultRoutes); adding a saga is one Route plus its
// workflow.
//
// Delivery is at least once, so the bridge makes every effect idempotent on
// Temporal's side: a workflow id is derived from the business id and started
// with reuse policy reject-duplicate and conflict policy fail, so a
// redelivered or duplicated event finds the saga already started (running or
// ended) and is acked without starting another one.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporalerr"
	"github.com/sagaflow/sagaflow/internal/tracing"
)

// Temporal is the part of the Temporal client the bridge uses;
// client.Client satisfies it.
type Temporal interface {
	// ExecuteWorkflow starts a workflow (see client.Client).
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	// SignalWorkflow signals a running workflow (see client.Client).
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// Config configures a Bridge.
type Config struct {
	// Name is the durable queue the bridge consumes, bound on the event
	// exchange to the routes' event types; its dead letters go to
	// "<Name>.dlq". Default contract.BridgeQueue ("bridge").
	Name string
	// TaskQueue is the task queue the routes' start options are built for.
	// Default contract.TaskQueue ("sagas").
	TaskQueue string
	// Routes maps event types to workflow starts and signals. Default
	// DefaultRoutes().
	Routes []Route
	// Concurrency is the number of events handled at once. Default 8.
	Concurrency int
	// MaxAttempts is the number of attempts at an event whose start or
	// signal fails transiently (Temporal unreachable) before it is
	// dead-lettered. Default 10.
	MaxAttempts int
	// Backoff is the delay between those attempts. Defaults: 200ms, ×2,
	// max 10s.
	Backoff amqp.BackoffConfig
	// NotRunningAttempts is the number of deliveries of a signal whose
	// workflow is not running before it is dead-lettered. The default 3
	// lets a signal that overtook the event starting its workflow (the two
	// are handled concurrently) wait for it through the retry queues, about
	// a second; 1 dead-letters at once. At most MaxAttempts.
	NotRunningAttempts int
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = contract.BridgeQueue
	}
	if c.TaskQueue == "" {
		c.TaskQueue = contract.TaskQueue
	}
	if c.Routes == nil {
		c.Routes = DefaultRoutes()
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.NotRunningAttempts == 0 {
		c.NotRunningAttempts = 3
	}
}

// Validate reports every problem with the configuration, with defaults
// applied to unset fields.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("bridge: Concurrency must be at least 1"))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, errors.New("bridge: MaxAttempts must be at least 1"))
	}
	if c.NotRunningAttempts < 1 || c.NotRunningAttempts > c.MaxAttempts {
		errs = append(errs, fmt.Errorf("bridge: NotRunningAttempts must be between 1 and MaxAttempts (%d)", c.MaxAttempts))
	}
	errs = append(errs, validateRoutes(c.Routes))
	return errors.Join(errs...)
}

// Bindings returns the routing keys of the routes: the event types the
// bridge's queue is bound with.
func (c Config) Bindings() []string {
	c.setDefaults()
	keys := make([]string, 0, len(c.Routes))
	for _, r := range c.Routes {
		keys = append(keys, r.EventType)
	}
	return keys
}

// Stats counts what a bridge did. Read the fields with Load.
type Stats struct {
	// Started counts workflows the bridge started.
	Started atomic.Int64
	// AlreadyStarted counts start events whose workflow id was already
	// taken, by a running or an ended workflow: acked, nothing started.
	AlreadyStarted atomic.Int64
	// Signalled counts signals delivered.
	Signalled atomic.Int64
	// Rejected counts events sent to the dead letters: undecodable,
	// invalid, unrouted, or signalling a workflow that is not running.
	Rejected atomic.Int64
}

// Bridge consumes events and starts or signals workflows.
type Bridge struct {
	temporal Temporal
	cfg      Config
	routes   map[string]Route
	stats    Stats
}

// New builds a bridge over a Temporal client; Run consumes.
func New(t Temporal, cfg Config) (*Bridge, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errors.New("bridge: nil Temporal client")
	}
	routes := make(map[string]Route, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes[r.EventType] = r
	}
	return &Bridge{temporal: t, cfg: cfg, routes: routes}, nil
}

// Stats returns the bridge's counters.
func (b *Bridge) Stats() *Stats { return &b.stats }

// Consumer builds the bridge's consumer on conn: queue Config.Name bound to
// the routes' event types on the event exchange.
func (b *Bridge) Consumer(conn *amqp.Conn) (*amqp.Consumer, error) {
	c, err := conn.NewConsumer(amqp.ConsumerConfig{
		Name:        b.cfg.Name,
		Bindings:    b.cfg.Bindings(),
		Concurrency: b.cfg.Concurrency,
		MaxAttempts: b.cfg.MaxAttempts,
		Backoff:     b.cfg.Backoff,
	}, b.Handle)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return c, nil
}

// Run consumes events until ctx ends; it returns nil after a shutdown
// through ctx.
func (b *Bridge) Run(ctx context.Context, conn *amqp.Conn) error {
	c, err := b.Consumer(conn)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// Handle is the bridge's amqp.Handler. It returns nil when the workflow was
// started or signalled, or had already been started for this event's id; an
// amqp.Permanent error for an event no retry can help (undecodable, invalid,
// unrouted, a signal to a workflow that is not running); and a plain error,
// retried by the consumer, when Temporal failed transiently.
func (b *Bridge) Handle(ctx context.Context, d amqp.Delivery) error {
	err := b.handle(ctx, d)
	if amqp.IsPermanent(err) {
		b.stats.Rejected.Add(1)
	}
	return err
}

func (b *Bridge) handle(ctx context.Context, d amqp.Delivery) error {
	env, payload, err := amqp.EnvelopeFromDelivery(d)
	if err != nil {
		return amqp.Permanent(fmt.Errorf("bridge: %w", err))
	}
	r, ok := b.routes[env.Type]
	if !ok {
		return amqp.Permanent(fmt.Errorf("bridge: event %s: no route for type %q", env.ID, env.Type))
	}
	if r.Start != nil {
		return b.start(ctx, env, payload, r.Start)
	}
	return b.signal(ctx, d, env, payload, r.Signal)
}

func (b *Bridge) start(ctx context.Context, env events.Envelope, p events.Payload, r *StartRoute) error {
	opts := r.Options(p, b.cfg.TaskQueue)
	id := opts.ID
	if id == "" {
		return amqp.Permanent(fmt.Errorf("bridge: event %s (%s): empty workflow id", env.ID, env.Type))
	}
	// The saga's own memo plus the event's ids, in a map of the bridge's
	// own: Options may hand out a shared one.
	m := memo(env)
	maps.Copy(m, opts.Memo)
	opts.Memo = m
	var input any = p
	if r.Input != nil {
		input = r.Input(env, p)
	}
	// The saga gets a trace of its own, linked to the event's: one trace
	// per saga, however the event's own trace goes on.
	_, err := b.temporal.ExecuteWorkflow(tracing.NewTraceLinkedTo(ctx), opts, r.Workflow, input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		b.stats.Started.Add(1)
		return nil
	case errors.As(err, &started):
		b.stats.AlreadyStarted.Add(1)
		return nil
	case isPermanentTemporal(err):
		return amqp.Permanent(fmt.Errorf("bridge: start %s for event %s: %w", id, env.ID, err))
	case temporalerr.Unavailable(err):
		// The event waits for Temporal however long it is away: a
		// dead-lettered order.placed would be a saga never started.
		return amqp.Unavailable(fmt.Errorf("bridge: start %s for event %s: %w", id, env.ID, err))
	default:
		return fmt.Errorf("bridge: start %s for event %s: %w", id, env.ID, err)
	}
}

func (b *Bridge) signal(ctx context.Context, d amqp.Delivery, env events.Envelope, p events.Payload, r *SignalRoute) error {
	id := r.WorkflowID(p)
	if id == "" {
		return amqp.Permanent(fmt.Errorf("bridge: event %s (%s): empty workflow id", env.ID, env.Type))
	}
	var arg any = p
	if r.Arg != nil {
		arg = r.Arg(env, p)
	}
	err := b.temporal.SignalWorkflow(ctx, id, "", r.Signal, arg)
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		b.stats.Signalled.Add(1)
		return nil
	case errors.As(err, &notFound):
		subject := "workflow " + id
		if r.Subject != nil {
			subject = r.Subject(p)
		}
		reason := fmt.Errorf("%s has no running saga (event %s, signal %s)", subject, env.ID, r.Signal)
		if d.Attempt < b.cfg.NotRunningAttempts {
			return reason
		}
		return amqp.Permanent(reason)
	case isPermanentTemporal(err):
		return amqp.Permanent(fmt.Errorf("bridge: signal %s to %s for event %s: %w", r.Signal, id, env.ID, err))
	case temporalerr.Unavailable(err):
		return amqp.Unavailable(fmt.Errorf("bridge: signal %s to %s for event %s: %w", r.Signal, id, env.ID, err))
	default:
		return fmt.Errorf("bridge: signal %s to %s for event %s: %w", r.Signal, id, env.ID, err)
	}
}

// isPermanentTemporal reports errors about the request itself, which a
// retry would meet again: an unregistered search attribute, a namespace
// that does not exist, an argument the server refuses.
func isPermanentTemporal(err error) bool {
	var (
		invalid   *serviceerror.InvalidArgument
		namespace *serviceerror.NamespaceNotFound
		denied    *serviceerror.PermissionDenied
	)
	return errors.As(err, &invalid) || errors.As(err, &namespace) || errors.As(err, &denied)
}

// memo links a workflow to the envelope that started it.
func memo(env events.Envelope) map[string]any {
	m := map[string]any{
		contract.MemoEventID:     env.ID,
		contract.MemoEventType:   env.Type,
		contract.MemoEventSource: env.Source,
	}
	if env.CorrelationID != "" {
		m[contract.MemoCorrelationID] = env.CorrelationID
	}
	if env.CausationID != "" {
		m[contract.MemoCausationID] = env.CausationID
	}
	return m
}
