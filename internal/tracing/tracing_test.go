package tracing

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/sagaflow/sagaflow/contract"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "off without an endpoint", env: nil, check: func(t *testing.T, c Config) {
			require.False(t, c.Enabled())
			require.Equal(t, "svc", c.ServiceName)
		}},
		{name: "every variable", env: map[string]string{
			EnvEndpoint: "http://localhost:4318", EnvProtocol: ProtocolHTTP, EnvServiceName: "mine",
			EnvSampler: "parentbased_traceidratio", EnvSamplerArg: "0.5",
			EnvResourceAttributes: "deployment.environment=prod, team=a%20b", EnvTraceUIURL: "http://j/trace/{trace_id}",
		}, check: func(t *testing.T, c Config) {
			require.True(t, c.Enabled())
			require.Equal(t, "mine", c.ServiceName)
			require.Equal(t, map[string]string{"deployment.environment": "prod", "team": "a b"}, c.ResourceAttributes)
			require.Equal(t, "http://j/trace/abc", c.TraceURL("abc"))
		}},
		{name: "endpoint without a scheme", env: map[string]string{EnvEndpoint: "localhost:4317"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT \"localhost:4317\": want a URL"},
		{name: "unknown protocol", env: map[string]string{EnvEndpoint: "http://x:4317", EnvProtocol: "thrift"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL \"thrift\": want grpc or http/protobuf"},
		{name: "unknown sampler", env: map[string]string{EnvSampler: "sometimes"}, wantErr: "OTEL_TRACES_SAMPLER \"sometimes\""},
		{name: "bad ratio", env: map[string]string{EnvSampler: "traceidratio", EnvSamplerArg: "2"}, wantErr: "OTEL_TRACES_SAMPLER_ARG \"2\": want a ratio between 0 and 1"},
		{name: "bad resource attribute", env: map[string]string{EnvResourceAttributes: "novalue"}, wantErr: "OTEL_RESOURCE_ATTRIBUTES: \"novalue\" is not key=value"},
		{name: "trace UI without placeholder", env: map[string]string{EnvTraceUIURL: "http://j/trace"}, wantErr: "OTEL_TRACE_UI_URL \"http://j/trace\": want a URL template with {trace_id}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(env(tc.env), "svc")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

// With tracing off nothing is installed: no interceptor, and the global
// provider and propagator stay OpenTelemetry's no-op defaults, so no trace
// header is written anywhere.
func TestSetupOffInstallsNothing(t *testing.T) {
	before, beforeProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	tr, err := Setup(context.Background(), Config{})
	require.NoError(t, err)
	require.False(t, tr.Enabled())
	require.Nil(t, tr.ClientInterceptors())
	require.Same(t, before, otel.GetTracerProvider())
	require.Equal(t, beforeProp, otel.GetTextMapPropagator())
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(context.Background(), carrier)
	require.Empty(t, carrier)
	require.NoError(t, tr.Shutdown(context.Background()))
}

// recordingOutbound is the next interceptor: it keeps the options it got.
type recordingOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	got *interceptor.ClientExecuteWorkflowInput
	ctx context.Context
}

func (r *recordingOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	r.got, r.ctx = in, ctx
	return nil, nil
}

func TestStartSpanRootsTheTraceAndWritesItsIDInTheMemo(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	next := &recordingOutbound{}
	out := (&startInterceptor{tracer: tp.Tracer("test")}).InterceptClient(next)
	shared := map[string]any{"total": 5}
	opts := &client.StartWorkflowOptions{ID: "order-1", Memo: shared}
	_, err := out.ExecuteWorkflow(context.Background(), &interceptor.ClientExecuteWorkflowInput{Options: opts, WorkflowType: "OrderWorkflow"})
	require.NoError(t, err)

	spans := rec.Ended()
	require.Len(t, spans, 1)
	root := spans[0]
	require.Equal(t, "start OrderWorkflow", root.Name())
	require.False(t, root.Parent().IsValid(), "the start span is the root")
	require.Equal(t, root.SpanContext().TraceID().String(), next.got.Options.Memo[contract.MemoTraceID])
	require.Equal(t, 5, next.got.Options.Memo["total"])
	require.NotContains(t, shared, contract.MemoTraceID, "the caller's memo is not changed")
	require.Equal(t, root.SpanContext().SpanID(), trace.SpanContextFromContext(next.ctx).SpanID(), "the SDK's span is its child")
}

func TestNewTraceLinkedToStartsAnotherTraceWithALink(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, event := tp.Tracer("test").Start(context.Background(), "process order.placed")
	next := &recordingOutbound{}
	out := (&startInterceptor{tracer: tp.Tracer("test")}).InterceptClient(next)
	_, err := out.ExecuteWorkflow(NewTraceLinkedTo(ctx), &interceptor.ClientExecuteWorkflowInput{Options: &client.StartWorkflowOptions{ID: "order-2"}, WorkflowType: "OrderWorkflow"})
	require.NoError(t, err)
	event.End()
	start := rec.Ended()[0]
	require.False(t, start.Parent().IsValid())
	require.NotEqual(t, event.SpanContext().TraceID(), start.SpanContext().TraceID())
	require.Len(t, start.Links(), 1)
	require.Equal(t, event.SpanContext().SpanID(), start.Links()[0].SpanContext.SpanID())
}
