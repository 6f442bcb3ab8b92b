package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporaltls"
	"github.com/sagaflow/sagaflow/internal/tracing"
)

// source is the envelope source of everything the CLI sends.
const source = "starter"

// app is one run of the CLI: its settings, its output and the connections
// it opened, closed at the end.
type app struct {
	cfg    config
	getenv func(string) string
	out    io.Writer
	errOut io.Writer
	// running is set once a command passed cobra's parsing and started.
	running bool

	// codec encrypts and decrypts the Temporal payloads; set before a
	// command runs.
	codec *codec.Codec
	// tracing exports the command's spans and instruments its Temporal
	// client; traceCfg is its configuration (OTEL_*), set with it.
	tracing   *tracing.Tracing
	traceCfg  tracing.Config
	temporal  client.Client
	conn      *amqp.Conn
	requester *amqp.Requester
	publisher *amqp.Publisher
	closers   []func()
}

func newApp(getenv func(string) string, stdout, stderr io.Writer) *app {
	return &app{getenv: getenv, out: stdout, errOut: stderr}
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// context returns the context of a command, bounded by --timeout.
func (a *app) context(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, a.cfg.Timeout)
}

// setupTracing starts the OpenTelemetry tracing of the OTEL_* variables
// (off without an endpoint); it is flushed last, when the command ends.
func (a *app) setupTracing() error {
	cfg, err := tracing.FromEnv(a.getenv, "sagaflow-starter")
	if err != nil {
		return &usageError{joinLines(err)}
	}
	tr, err := tracing.Setup(context.Background(), cfg)
	if err != nil {
		return err
	}
	a.tracing, a.traceCfg = tr, cfg
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			fmt.Fprintf(a.errOut, "starter: %s\n", shortError(err))
		}
	})
	return nil
}

// temporalClient dials Temporal once, within --dial-timeout.
func (a *app) temporalClient(ctx context.Context) (client.Client, error) {
	if a.temporal != nil {
		return a.temporal, nil
	}
	tlsCfg, err := temporaltls.Config{
		CAFile: a.cfg.TLSCA, CertFile: a.cfg.TLSCert, KeyFile: a.cfg.TLSKey, ServerName: a.cfg.TLSServerName,
	}.Client(a.cfg.Address)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	c, err := client.DialContext(dctx, client.Options{
		HostPort:          a.cfg.Address,
		Namespace:         a.cfg.Namespace,
		Logger:            tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg},
		DataConverter:     a.codec.DataConverter(),
		FailureConverter:  a.codec.FailureConverter(),
		Interceptors:      a.tracing.ClientInterceptors(),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot reach Temporal at %s (namespace %s): %s", a.cfg.Address, a.cfg.Namespace, shortError(err))
	}
	a.temporal = c
	a.closers = append(a.closers, c.Close)
	return c, nil
}

// broker dials RabbitMQ once, within --dial-timeout.
func (a *app) broker(ctx context.Context) (*amqp.Conn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	conn, err := amqp.Dial(dctx, amqp.Config{URL: a.cfg.AMQPURL, TLS: a.cfg.AMQPTLS, QueueType: a.cfg.AMQPQueueType, DeliveryLimit: a.cfg.AMQPDeliveryLimit, ConnectionName: "sagaflow-starter", Exchange: a.cfg.Exchange})
	if err != nil {
		return nil, fmt.Errorf("cannot reach RabbitMQ at %s: %s", amqp.RedactURLs(a.cfg.AMQPURL), shortError(err))
	}
	a.conn = conn
	a.closers = append(a.closers, func() { _ = conn.Close() })
	return conn, nil
}

func (a *app) requesterFor(ctx context.Context) (*amqp.Requester, error) {
	if a.requester != nil {
		return a.requester, nil
	}
	conn, err := a.broker(ctx)
	if err != nil {
		return nil, err
	}
	r, err := conn.NewRequester(amqp.RequesterConfig{ReplyQueuePrefix: "starter.reply"})
	if err != nil {
		return nil, err
	}
	a.requester = r
	a.closers = append(a.closers, func() { _ = r.Close() })
	return r, nil
}

func (a *app) publisherFor(ctx context.Context) (*amqp.Publisher, error) {
	if a.publisher != nil {
		return a.publisher, nil
	}
	conn, err := a.broker(ctx)
	if err != nil {
		return nil, err
	}
	p, err := conn.NewPublisher(amqp.PublisherConfig{})
	if err != nil {
		return nil, err
	}
	a.publisher = p
	a.closers = append(a.closers, func() { _ = p.Close() })
	return p, nil
}

// rejectedError is a command or query a service refused.
type rejectedError struct {
	Service, Type, Reason, Message string
}

func (e *rejectedError) Error() string {
	msg := fmt.Sprintf("%s rejected %s: %s", e.Service, e.Type, e.Reason)
	if e.Message != "" {
		msg += " (" + e.Message + ")"
	}
	return msg
}

// request sends a command or query to a service's queue and waits for the
// reply. A rejection is a *rejectedError; an accepted reply's result is
// decoded into result when it is not nil.
func (a *app) request(ctx context.Context, service, queue, typ, subject string, payload events.Payload, result any) error {
	if err := payload.Validate(); err != nil {
		return &usageError{fmt.Errorf("%s: %w", typ, joinLines(err))}
	}
	r, err := a.requesterFor(ctx)
	if err != nil {
		return err
	}
	env, err := events.New(typ, source, payload, events.WithSubject(subject))
	if err != nil {
		return &usageError{fmt.Errorf("%s: %w", typ, joinLines(err))}
	}
	body, err := env.Encode()
	if err != nil {
		return err
	}
	d, err := r.Request(ctx, queue, amqp.Message{
		ID: env.ID, Type: env.Type, Timestamp: env.Time, ContentType: events.ContentTypeJSON, Body: body,
	})
	switch {
	case errors.Is(err, amqp.ErrUnroutable):
		return fmt.Errorf("%s: queue %s does not exist (is the %s service running?)", typ, queue, service)
	case errors.Is(err, amqp.ErrRequestTimeout):
		return fmt.Errorf("%s: no reply from %s within %s (is the %s service running?)", typ, queue, a.cfg.Timeout, service)
	case err != nil:
		return fmt.Errorf("%s: %w", typ, err)
	}
	_, reply, err := events.DecodeAs[events.Reply](d.Body)
	if err != nil {
		return fmt.Errorf("%s: undecodable reply from %s: %w", typ, service, err)
	}
	if !reply.Accepted() {
		return &rejectedError{Service: service, Type: typ, Reason: reply.Reason, Message: reply.Message}
	}
	if result != nil && len(reply.Result) > 0 {
		if err := json.Unmarshal(reply.Result, result); err != nil {
			return fmt.Errorf("%s: unexpected result from %s: %w", typ, service, err)
		}
	}
	return nil
}

// shortError is the first line of an error, without the gRPC noise that
// makes connection errors unreadable.
func shortError(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(s, "deadline") {
		s += " (timed out)"
	}
	return s
}

// joinLines turns a joined error into one line.
func joinLines(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.out, format, args...)
}

// since formats a time for tables.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
