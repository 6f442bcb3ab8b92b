// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables and carries a saga's trace through Temporal: the
// SDK's OpenTelemetry interceptor on every client and worker, and a start
// span that roots the saga's trace and writes its id into the workflow's
// memo. Without an endpoint tracing is off: nothing is exported, no
// interceptor is installed and the global OpenTelemetry provider and
// propagator stay the no-op defaults, so no trace header is ever written.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	otelinterceptor "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// The environment variables Config is read from; all but EnvTraceUIURL are
// the OpenTelemetry SDK's standard ones.
const (
	EnvEndpoint           = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvProtocol           = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvServiceName        = "OTEL_SERVICE_NAME"
	EnvSampler            = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg         = "OTEL_TRACES_SAMPLER_ARG"
	EnvResourceAttributes = "OTEL_RESOURCE_ATTRIBUTES"
	// EnvTraceUIURL is a URL template of the trace viewer with {trace_id}
	// in it, for example http://localhost:16686/trace/{trace_id} (Jaeger).
	EnvTraceUIURL = "OTEL_TRACE_UI_URL"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Config is the tracing setup of one process.
type Config struct {
	// Endpoint is the OTLP collector's URL, for example
	// http://localhost:4317 (gRPC) or http://localhost:4318 (HTTP, to which
	// /v1/traces is added). Empty turns tracing off.
	Endpoint string
	// Protocol is ProtocolGRPC or ProtocolHTTP. Default ProtocolGRPC.
	Protocol string
	// ServiceName is the resource's service.name. Default the process's
	// own name, given to FromEnv.
	ServiceName string
	// Sampler is the OTEL_TRACES_SAMPLER name. Default
	// "parentbased_always_on".
	Sampler string
	// SamplerArg is OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio
	// samplers, between 0 and 1. Default 1.
	SamplerArg string
	// ResourceAttributes are the extra resource attributes of
	// OTEL_RESOURCE_ATTRIBUTES (key=value,key=value, values percent-encoded).
	ResourceAttributes map[string]string
	// TraceUIURL is the trace viewer's URL template (EnvTraceUIURL); empty
	// prints no link.
	TraceUIURL string
}

// FromEnv reads the configuration from getenv; service is the default
// service name. Every problem is reported at once.
func FromEnv(getenv func(string) string, service string) (Config, error) {
	c := Config{
		Endpoint:    strings.TrimSpace(getenv(EnvEndpoint)),
		Protocol:    strings.TrimSpace(getenv(EnvProtocol)),
		ServiceName: strings.TrimSpace(getenv(EnvServiceName)),
		Sampler:     strings.TrimSpace(getenv(EnvSampler)),
		SamplerArg:  strings.TrimSpace(getenv(EnvSamplerArg)),
		TraceUIURL:  strings.TrimSpace(getenv(EnvTraceUIURL)),
	}
	if c.ServiceName == "" {
		c.ServiceName = service
	}
	var errs []error
	if raw := strings.TrimSpace(getenv(EnvResourceAttributes)); raw != "" {
		attrs, err := parseResourceAttributes(raw)
		if err != nil {
			errs = append(errs, err)
		}
		c.ResourceAttributes = attrs
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func parseResourceAttributes(raw string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(raw, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not key=value", EnvResourceAttributes, kv)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s: value of %s: %w", EnvResourceAttributes, k, err)
		}
		out[k] = dv
	}
	return out, nil
}

// Enabled reports whether traces are exported.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q: want a URL such as http://localhost:4317", EnvEndpoint, c.Endpoint))
		}
	}
	switch c.Protocol {
	case "", ProtocolGRPC, ProtocolHTTP:
	default:
		errs = append(errs, fmt.Errorf("%s %q: want %s or %s", EnvProtocol, c.Protocol, ProtocolGRPC, ProtocolHTTP))
	}
	if _, err := c.sampler(); err != nil {
		errs = append(errs, err)
	}
	if c.TraceUIURL != "" && !strings.Contains(c.TraceUIURL, "{trace_id}") {
		errs = append(errs, fmt.Errorf("%s %q: want a URL template with {trace_id} in it", EnvTraceUIURL, c.TraceUIURL))
	}
	return errors.Join(errs...)
}

func (c Config) sampler() (sdktrace.Sampler, error) {
	ratio := 1.0
	if c.SamplerArg != "" && strings.HasSuffix(c.Sampler, "traceidratio") {
		r, err := strconv.ParseFloat(c.SamplerArg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("%s %q: want a ratio between 0 and 1", EnvSamplerArg, c.SamplerArg)
		}
		ratio = r
	}
	switch c.Sampler {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	default:
		return nil, fmt.Errorf("%s %q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", EnvSampler, c.Sampler)
	}
}

// TraceURL is the trace viewer's link to a trace, or "" without a
// template or a trace id.
func (c Config) TraceURL(traceID string) string {
	if c.TraceUIURL == "" || traceID == "" {
		return ""
	}
	return strings.ReplaceAll(c.TraceUIURL, "{trace_id}", traceID)
}

// Tracing is the tracing of a running process.
type Tracing struct {
	provider     *sdktrace.TracerProvider
	interceptors []interceptor.ClientInterceptor
}

// Setup starts exporting as cfg says and installs the provider and the W3C
// trace-context propagator as OpenTelemetry's globals, which the amqp
// package uses. With tracing off it does nothing and returns a Tracing
// without interceptors. Call Shutdown before the process exits.
func Setup(ctx context.Context, cfg Config) (*Tracing, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return &Tracing{}, nil
	}
	sampler, _ := cfg.sampler()
	var (
		exp *otlptrace.Exporter
		err error
	)
	if cfg.Protocol == ProtocolHTTP {
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimSuffix(cfg.Endpoint, "/")+"/v1/traces"))
	} else {
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	for k, v := range cfg.ResourceAttributes {
		if k != "service.name" {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	temporalTracing, err := otelinterceptor.NewTracingInterceptor(otelinterceptor.TracerOptions{
		Tracer: tp.Tracer("go.temporal.io/sdk"),
	})
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, fmt.Errorf("Temporal tracing interceptor: %w", err)
	}
	return &Tracing{
		provider: tp,
		// The start span wraps the SDK's: it exists before the start
		// request is built, so its trace id can go into the memo.
		interceptors: []interceptor.ClientInterceptor{
			&startInterceptor{tracer: tp.Tracer(instrumentation)},
			temporalTracing,
		},
	}, nil
}

// instrumentation names this project's tracer.
const instrumentation = "github.com/sagaflow/sagaflow"

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// ClientInterceptors are the interceptors of every Temporal client (and so
// of the workers built on it): the saga start span and the SDK's
// OpenTelemetry tracing. Nil when tracing is off.
func (t *Tracing) ClientInterceptors() []interceptor.ClientInterceptor {
	if t == nil {
		return nil
	}
	return t.interceptors
}

// Shutdown exports the spans still buffered and stops the exporter; ctx
// bounds the wait.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// TraceID is the id of the trace ctx's span belongs to, or "" when ctx
// carries none (tracing off).
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
