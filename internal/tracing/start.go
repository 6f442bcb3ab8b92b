package tracing

import (
	"context"
	"maps"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/sagaflow/sagaflow/contract"
)

// linkKey holds the span context a new trace is linked to (NewTraceLinkedTo).
type linkKey struct{}

// NewTraceLinkedTo returns ctx without its span, so that a saga started
// under it roots a trace of its own, and with a link from that saga's
// start span to the span ctx had: the bridge starts an order saga in a
// trace of its own that points back to the order.placed event's trace.
func NewTraceLinkedTo(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	if !sc.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, linkKey{}, sc)
}

// startInterceptor starts the span a saga's start happens in and writes
// its trace id into the workflow's memo (contract.MemoTraceID). Started
// without a span in the context it is the root of the saga's trace.
type startInterceptor struct {
	interceptor.ClientInterceptorBase
	tracer trace.Tracer
}

func (i *startInterceptor) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	o := &startOutbound{tracer: i.tracer}
	o.Next = next
	return o
}

type startOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	tracer trace.Tracer
}

func (o *startOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("temporal.workflow.type", in.WorkflowType)),
	}
	if in.Options != nil {
		opts = append(opts, trace.WithAttributes(attribute.String("temporal.workflow.id", in.Options.ID)))
	}
	if link, ok := ctx.Value(linkKey{}).(trace.SpanContext); ok {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	ctx, span := o.tracer.Start(ctx, "start "+in.WorkflowType, opts...)
	defer span.End()
	if sc := span.SpanContext(); sc.IsValid() && in.Options != nil {
		// A copy: the caller's options and memo may be shared.
		withID := *in.Options
		withID.Memo = make(map[string]any, len(in.Options.Memo)+1)
		maps.Copy(withID.Memo, in.Options.Memo)
		withID.Memo[contract.MemoTraceID] = sc.TraceID().String()
		in.Options = &withID
	}
	run, err := o.Next.ExecuteWorkflow(ctx, in)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return run, err
}
