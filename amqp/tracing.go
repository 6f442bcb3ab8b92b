package amqp

import (
	"context"
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Messages carry their trace in W3C trace-context headers (traceparent,
// tracestate) written by the global OpenTelemetry propagator, and their
// spans follow the OpenTelemetry messaging conventions. Tracing is set up
// by the process (internal/tracing); until then the global provider and
// propagator are no-ops: no span is recorded and no header is written.

// instrumentation names the package's tracer.
const instrumentation = "github.com/sagaflow/sagaflow/amqp"

// Attribute keys of the OpenTelemetry messaging semantic conventions.
const (
	attrSystem         = "messaging.system"
	attrDestination    = "messaging.destination.name"
	attrSubscription   = "messaging.destination.subscription.name"
	attrOperationType  = "messaging.operation.type"
	attrOperationName  = "messaging.operation.name"
	attrMessageID      = "messaging.message.id"
	attrConversationID = "messaging.message.conversation_id"
	attrRoutingKey     = "messaging.rabbitmq.destination.routing_key"
	attrBodySize       = "messaging.message.body.size"
)

// Names of the span events the consumer's layers add to a delivery's span.
const (
	EventDuplicateDropped = "duplicate dropped"
	EventDeferred         = "deferred: another delivery of the id is being handled"
	EventRetry            = "retry scheduled"
	EventDeadLettered     = "dead-lettered"
)

func tracer() trace.Tracer { return otel.Tracer(instrumentation) }

// headerCarrier lets the propagator read and write an AMQP headers table.
type headerCarrier map[string]any

func (h headerCarrier) Get(key string) string {
	s, _ := h[key].(string)
	return s
}

func (h headerCarrier) Set(key, value string) { h[key] = value }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// destination is a message's destination name: its exchange, or the queue
// a message sent on the default exchange goes to.
func destination(exchange, routingKey string) string {
	if exchange == "" {
		return routingKey
	}
	return exchange
}

func messageAttrs(m Message) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String(attrSystem, "rabbitmq"),
		attribute.String(attrDestination, destination(m.Exchange, m.RoutingKey)),
		attribute.String(attrRoutingKey, m.RoutingKey),
		attribute.Int(attrBodySize, len(m.Body)),
	}
	if m.ID != "" {
		attrs = append(attrs, attribute.String(attrMessageID, m.ID))
	}
	if m.CorrelationID != "" {
		attrs = append(attrs, attribute.String(attrConversationID, m.CorrelationID))
	}
	return attrs
}

// startPublish starts the producer span of publishing m and returns m with
// the span's context in a copy of its headers. The span's parent is ctx's
// span; without one, the trace context m already carries (a message
// written earlier, such as an outbox row), so that its trace goes on.
func startPublish(ctx context.Context, m Message) (Message, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() && len(m.Headers) > 0 {
		ctx = otel.GetTextMapPropagator().Extract(ctx, headerCarrier(m.Headers))
	}
	ctx, span := tracer().Start(ctx, "publish "+destination(m.Exchange, m.RoutingKey), trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(append(messageAttrs(m),
			attribute.String(attrOperationType, "send"),
			attribute.String(attrOperationName, "publish"))...)
	}
	injected := headerCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, injected)
	if len(injected) == 0 {
		return m, span
	}
	h := make(map[string]any, len(m.Headers)+len(injected))
	for k, v := range m.Headers {
		h[k] = v
	}
	for k, v := range injected {
		h[k] = v
	}
	m.Headers = h
	return m, span
}

// startProcess starts the consumer span of handling d from queue, a child
// of the span the publisher sent it in.
//
// The spans' attributes (here and in startPublish) are set only on a
// recording span: the standard samplers (internal/tracing) do not look at
// attributes, and with tracing off building them was most of what a
// delivery's span cost.
func startProcess(ctx context.Context, d amqp091.Delivery, queue string) (context.Context, trace.Span) {
	if len(d.Headers) > 0 {
		ctx = otel.GetTextMapPropagator().Extract(ctx, headerCarrier(d.Headers))
	}
	ctx, span := tracer().Start(ctx, "process "+queue, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(append(messageAttrs(messageOf(d)),
			attribute.String(attrSubscription, queue),
			attribute.String(attrOperationType, "process"),
			attribute.String(attrOperationName, "process"))...)
	}
	return ctx, span
}

// endSpan ends span, recording err as its failure.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// spanEvent adds an event to the span of ctx (a delivery being handled).
func spanEvent(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	trace.SpanFromContext(ctx).AddEvent(name, trace.WithAttributes(attrs...))
}

// TraceHeaders returns the W3C trace-context headers of ctx's span, for a
// message to be published later (an outbox row): a Publish whose context
// has no span continues the trace its headers carry. Nil when tracing is
// off or ctx has no span.
func TraceHeaders(ctx context.Context) map[string]string {
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}

func attemptAttrs(d Delivery, err error) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.Int("messaging.rabbitmq.attempt", d.Attempt)}
	if err != nil {
		attrs = append(attrs, attribute.String("error.message", fmt.Sprint(err)))
	}
	return attrs
}
