package amqp

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sagaflow/sagaflow/internal/testenv"
)

// traceparentRE is the W3C trace-context header, version 00.
var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

// installTracing makes the global provider record spans, with the W3C
// propagator, as internal/tracing does, and puts the no-ops back after the
// test.
func installTracing(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	return rec
}

// spansNamed returns the ended spans of rec with the given name.
func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	for _, e := range s.Events() {
		if e.Name == name {
			return true
		}
	}
	return false
}

// A command published in a trace is handled in that trace: publish is a
// child of the caller's span, process a child of publish; a failed attempt
// is a retry event, and the retried delivery's handling a child of the
// retry's publish; the traceparent header names the publish span.
func TestTraceGoesFromPublishToProcessAndThroughRetries(t *testing.T) {
	rec := installTracing(t)
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("traced")
	type handled struct {
		span    trace.SpanContext
		headers map[string]any
	}
	got := make(chan handled, 2)
	attempts := 0
	b.start(ConsumerConfig{Name: q, Backoff: BackoffConfig{Initial: time.Millisecond, Max: time.Millisecond}, MaxAttempts: 2},
		func(ctx context.Context, d Delivery) error {
			got <- handled{trace.SpanContextFromContext(ctx), d.Headers}
			attempts++
			if attempts == 1 {
				return errors.New("first attempt fails")
			}
			return Permanent(errors.New("second attempt gives up"))
		})
	b.waitQueue(q)

	ctx, root := otel.Tracer("test").Start(testCtx(t), "saga")
	require.NoError(t, b.publisher().Publish(ctx, Message{RoutingKey: q, ID: "cmd-1", CorrelationID: "corr-1", Body: []byte("{}")}))
	root.End()
	first, second := recv(t, got), recv(t, got)

	require.Eventually(t, func() bool { return len(spansNamed(rec, "process "+q)) == 2 }, 10*time.Second, 10*time.Millisecond)
	publishes := spansNamed(rec, "publish "+q)
	require.NotEmpty(t, publishes)
	pub := publishes[0]
	require.Equal(t, root.SpanContext().SpanID(), pub.Parent().SpanID(), "publish is a child of the caller's span")
	require.Equal(t, "rabbitmq", attr(pub, "messaging.system"))
	require.Equal(t, q, attr(pub, "messaging.destination.name"))
	require.Equal(t, "cmd-1", attr(pub, "messaging.message.id"))
	require.Equal(t, "corr-1", attr(pub, "messaging.message.conversation_id"))
	require.Equal(t, trace.SpanKindProducer, pub.SpanKind())

	tp, _ := first.headers["traceparent"].(string)
	require.Regexp(t, traceparentRE, tp)
	require.Contains(t, tp, pub.SpanContext().SpanID().String(), "the header names the publish span")

	procs := spansNamed(rec, "process "+q)
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byID[s.SpanContext().SpanID()] = s
	}
	p1, p2 := byID[first.span.SpanID()], byID[second.span.SpanID()]
	require.NotNil(t, p1)
	require.NotNil(t, p2)
	require.ElementsMatch(t, []trace.SpanID{p1.SpanContext().SpanID(), p2.SpanContext().SpanID()},
		[]trace.SpanID{procs[0].SpanContext().SpanID(), procs[1].SpanContext().SpanID()})
	require.Equal(t, pub.SpanContext().SpanID(), p1.Parent().SpanID(), "process is a child of publish")
	require.Equal(t, "process", attr(p1, "messaging.operation.type"))
	require.True(t, hasEvent(p1, EventRetry), "the failed attempt is a retry event")
	retryPub := byID[p2.Parent().SpanID()]
	require.NotNil(t, retryPub, "the retried delivery continues from the retry's publish")
	require.Equal(t, p1.SpanContext().SpanID(), retryPub.Parent().SpanID())
	require.True(t, hasEvent(p2, EventDeadLettered), "giving up is a dead-letter event")
	for _, s := range []sdktrace.ReadOnlySpan{pub, p1, retryPub, p2} {
		require.Equal(t, root.SpanContext().TraceID(), s.SpanContext().TraceID(), "%s is in the caller's trace", s.Name())
	}
}

// A duplicate is dropped inside the trace of its delivery, as an event.
func TestDuplicateDroppedIsASpanEvent(t *testing.T) {
	rec := installTracing(t)
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("dup")
	handled := make(chan struct{}, 2)
	b.start(ConsumerConfig{Name: q}, func(context.Context, Delivery) error { handled <- struct{}{}; return nil })
	b.waitQueue(q)
	p := b.publisher()
	m := Message{RoutingKey: q, ID: "same-id", Body: []byte("{}")}
	require.NoError(t, p.Publish(testCtx(t), m))
	recv(t, handled)
	require.NoError(t, p.Publish(testCtx(t), m))
	require.Eventually(t, func() bool {
		for _, s := range spansNamed(rec, "process "+q) {
			if hasEvent(s, EventDuplicateDropped) {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
}

// A message written earlier with its trace context (an outbox row) and
// published from a context without a span continues that trace.
func TestPublishWithoutSpanContinuesTheMessagesTrace(t *testing.T) {
	rec := installTracing(t)
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("outbox")
	_, err := b.admin.QueueDeclare(q, false, true, false, false, nil)
	require.NoError(t, err)
	ctx, tx := otel.Tracer("test").Start(context.Background(), "transaction")
	headers := map[string]any{}
	for k, v := range TraceHeaders(ctx) {
		headers[k] = v
	}
	tx.End()
	require.NoError(t, b.publisher().PublishBatch(testCtx(t), []Message{{RoutingKey: q, ID: "row-1", Headers: headers, Body: []byte("{}")}}))
	pubs := spansNamed(rec, "publish "+q)
	require.Len(t, pubs, 1)
	require.Equal(t, tx.SpanContext().SpanID(), pubs[0].Parent().SpanID())
	require.Equal(t, tx.SpanContext().TraceID(), pubs[0].SpanContext().TraceID())
}

// With tracing off (the no-op defaults) no trace header is added, even to
// a message published in a context with a span.
func TestTracingOffAddsNoHeader(t *testing.T) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	otel.SetTracerProvider(noop.NewTracerProvider())
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("untraced")
	_, err := b.admin.QueueDeclare(q, false, true, false, false, nil)
	require.NoError(t, err)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(testCtx(t), sc)
	require.NoError(t, b.publisher().Publish(ctx, Message{RoutingKey: q, ID: "m-1", Headers: map[string]any{"tenant": "acme"}, Body: []byte("{}")}))
	require.Nil(t, TraceHeaders(ctx))
	d := recv(t, b.tap(q))
	require.Equal(t, map[string]any{"tenant": "acme"}, map[string]any(d.Headers))
}

// A consumer that is not ours, Debian's python3-pika, reads a valid
// traceparent on a message we published.
func TestForeignConsumerSeesTraceparent(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import pika").Run(); err != nil {
		testenv.Unavailable(t, "python3-pika", "apt-get install python3-pika")
	}
	rec := installTracing(t)
	b := newTestBroker(t, testenv.AMQPURL(t))
	q := b.name("pika")
	_, err := b.admin.QueueDeclare(q, false, false, false, false, nil)
	require.NoError(t, err)
	ctx, root := otel.Tracer("test").Start(testCtx(t), "saga")
	require.NoError(t, b.publisher().Publish(ctx, Message{RoutingKey: q, ID: "m-1", Body: []byte("{}")}))
	root.End()

	script := `
import sys, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
for method, props, body in ch.consume(sys.argv[2], auto_ack=True, inactivity_timeout=10):
    if method is None:
        sys.exit("no message")
    print((props.headers or {}).get("traceparent", ""))
    break
conn.close()
`
	cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "/usr/bin/python3", "-c", script, testenv.AMQPURL(t), q).CombinedOutput()
	require.NoError(t, err, "%s", out)
	tp := strings.TrimSpace(string(out))
	require.Regexp(t, traceparentRE, tp)
	pubs := spansNamed(rec, "publish "+q)
	require.Len(t, pubs, 1)
	require.Equal(t, "00-"+root.SpanContext().TraceID().String()+"-"+pubs[0].SpanContext().SpanID().String()+"-01", tp)
}
