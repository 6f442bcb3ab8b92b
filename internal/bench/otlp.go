package main

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"

	"github.com/sagaflow/sagaflow/internal/tracing"
)

// spanCounter is an OTLP/gRPC trace receiver on loopback that counts the
// spans it gets and keeps none: what the traced row exports to, so that
// exporting costs what it costs against a collector while the benchmark
// stays small.
type spanCounter struct {
	collectortrace.UnimplementedTraceServiceServer
	// Endpoint is its URL, http://127.0.0.1:port.
	Endpoint string
	spans    atomic.Int64
	srv      *grpc.Server
}

func startSpanCounter() (*spanCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("OTLP receiver: %w", err)
	}
	c := &spanCounter{Endpoint: "http://" + ln.Addr().String(), srv: grpc.NewServer()}
	collectortrace.RegisterTraceServiceServer(c.srv, c)
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// Export counts the spans of one export request.
func (c *spanCounter) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	var n int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
		}
	}
	c.spans.Add(n)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// Spans is how many spans arrived so far.
func (c *spanCounter) Spans() int64 { return c.spans.Load() }

func (c *spanCounter) stop() { c.srv.Stop() }

// tracedClient is c with tracing on, exporting to a fresh span counter:
// the client's start span roots each saga's trace, as the starter's does.
// shutdown flushes the client's spans and puts OpenTelemetry's no-op
// globals back, so the rows after it run untraced.
func tracedClient(ctx context.Context, c client.Client) (*spanCounter, client.Client, func(), error) {
	spans, err := startSpanCounter()
	if err != nil {
		return nil, nil, nil, err
	}
	tr, err := tracing.Setup(ctx, tracing.Config{Endpoint: spans.Endpoint, ServiceName: "sagaflow-bench"})
	if err != nil {
		spans.stop()
		return nil, nil, nil, err
	}
	tc, err := client.NewClientFromExisting(c, client.Options{Namespace: "default", Interceptors: tr.ClientInterceptors()})
	if err != nil {
		_ = tr.Shutdown(ctx)
		spans.stop()
		return nil, nil, nil, fmt.Errorf("client with tracing: %w", err)
	}
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = tr.Shutdown(sctx)
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	}
	return spans, tc, shutdown, nil
}
