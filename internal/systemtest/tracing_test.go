package systemtest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/tracing"
	"github.com/sagaflow/sagaflow/workflows"
)

// TestEverySagaIsOneTrace runs real worker processes exporting to an OTLP
// receiver of the test's own and checks that an order that confirms and
// one that is compensated are each one trace, rooted at the start span:
// the workflows, every activity, every command and reply published and
// consumed, the services' transactions, the relays' publishes of the
// domain events and the projection's handling of the outcome.
func TestEverySagaIsOneTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a worker process")
	}
	recv := systemtest.StartOTLPReceiver(t)
	env := []string{
		tracing.EnvEndpoint + "=" + recv.Endpoint,
		tracing.EnvProtocol + "=" + tracing.ProtocolGRPC,
		"OTEL_BSP_SCHEDULE_DELAY=100",
	}
	sys := systemtest.Start(t, systemtest.Options{WorkerEnv: env})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// The test starts the sagas as the starter does: a client with the
	// tracing interceptors, exporting as "sagaflow-starter".
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	tcfg, err := tracing.FromEnv(func(k string) string {
		switch k {
		case tracing.EnvEndpoint:
			return recv.Endpoint
		}
		return ""
	}, "sagaflow-starter")
	require.NoError(t, err)
	tr, err := tracing.Setup(ctx, tcfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	starter, err := client.NewClientFromExisting(sys.Temporal, client.Options{Interceptors: tr.ClientInterceptors()})
	require.NoError(t, err)

	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "trace-rich", Currency: "EUR", Owner: "Rich", InitialBalance: 1000})
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "trace-poor", Currency: "EUR", Owner: "Poor", InitialBalance: 10})
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: "trace-shop", Currency: "EUR", Owner: "Shop"})
	sys.MustAccept(ctx, contract.InventoryQueue, events.CmdInventoryRestock, events.InventoryRestock{SKU: "trace-mug", Quantity: 10})

	cases := []struct {
		order   events.OrderPlaced
		outcome contract.OrderOutcome
		// domain are the events the services' relays publish in the saga.
		domain []string
		final  string
	}{
		{
			order:   events.OrderPlaced{OrderID: "trace-ok", CustomerID: "trace-rich", MerchantID: "trace-shop", Lines: []events.OrderLine{{SKU: "trace-mug", Quantity: 2, UnitPrice: 150}}, Total: 300, Currency: "EUR"},
			outcome: contract.OrderConfirmed,
			domain:  []string{events.TypeInventoryReserved, events.TypeFundsWithdrawn, events.TypeFundsDeposited, events.TypeInventoryCommitted},
			final:   events.TypeOrderConfirmed,
		},
		{
			order:   events.OrderPlaced{OrderID: "trace-compensated", CustomerID: "trace-poor", MerchantID: "trace-shop", Lines: []events.OrderLine{{SKU: "trace-mug", Quantity: 1, UnitPrice: 150}}, Total: 150, Currency: "EUR"},
			outcome: contract.OrderCancelled,
			domain:  []string{events.TypeInventoryReserved, events.TypeInventoryReleased},
			final:   events.TypeOrderCancelled,
		},
	}
	traceIDs := map[string]string{}
	for _, c := range cases {
		run, err := starter.ExecuteWorkflow(ctx, contract.OrderStartOptions(c.order, sys.TaskQueue), workflows.OrderWorkflow, c.order)
		require.NoError(t, err)
		var res contract.OrderResult
		require.NoError(t, run.Get(ctx, &res))
		require.Equal(t, c.outcome, res.Outcome, "%+v", res)
		desc, err := sys.Temporal.DescribeWorkflowExecution(ctx, run.GetID(), "")
		require.NoError(t, err)
		var traceID string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[contract.MemoTraceID], &traceID))
		require.Len(t, traceID, 32, "the memo carries the trace id")
		traceIDs[c.order.OrderID] = traceID
	}
	require.NoError(t, tr.Shutdown(ctx))

	for _, c := range cases {
		t.Run(string(c.outcome), func(t *testing.T) {
			wfID := contract.OrderWorkflowID(c.order.OrderID)
			want := expectedSpans(t, ctx, sys, wfID)
			traceID := traceIDs[c.order.OrderID]
			var problems []string
			deadline := time.Now().Add(time.Minute)
			for {
				problems = checkTrace(recv.Spans(), traceID, c.order.OrderID, want, c.domain, c.final)
				if len(problems) == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond) // the exporters send in batches
			}
			require.Empty(t, problems, "trace %s of %s", traceID, wfID)
			perService := map[string]int{}
			for _, s := range recv.Spans() {
				if s.TraceID == traceID {
					perService[s.Service]++
				}
			}
			t.Logf("trace %s of %s: spans by service %v", traceID, wfID, perService)
		})
	}
}

// expectedSpans are the Temporal spans the saga's histories call for: a
// RunWorkflow span per workflow (the order and its children) and a
// RunActivity span per activity scheduled or run locally.
func expectedSpans(t *testing.T, ctx context.Context, sys *systemtest.System, rootID string) []string {
	var want []string
	queue := []string{rootID}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		it := sys.Temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
				want = append(want, "RunWorkflow:"+e.GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName())
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				want = append(want, "RunActivity:"+e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
			case enumspb.EVENT_TYPE_MARKER_RECORDED:
				// A local activity's marker: its "data" names its type.
				a := e.GetMarkerRecordedEventAttributes()
				if a.GetMarkerName() != "LocalActivity" {
					continue
				}
				var data struct{ ActivityType string }
				require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(a.GetDetails()["data"], &data))
				want = append(want, "RunActivity:"+data.ActivityType)
			case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
				queue = append(queue, e.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution().GetWorkflowId())
			}
		}
	}
	require.Greater(t, len(want), 4, "the saga ran children and activities")
	return want
}

// checkTrace lists what is wrong with the saga's trace: anything but one
// root (the start span), a span whose parent is not in the trace, a
// missing workflow or activity span, a command or reply without its
// publish-and-consume chain, a domain event not published from a
// transaction, the outcome not handled by the projection, or a span of the
// saga outside the trace.
func checkTrace(all []systemtest.Span, traceID, orderID string, want, domain []string, final string) []string {
	var problems []string
	var spans []systemtest.Span
	byID := map[string]systemtest.Span{}
	children := map[string][]systemtest.Span{}
	for _, s := range all {
		if s.TraceID != traceID {
			for k, v := range s.Attributes {
				if strings.Contains(v, orderID) {
					problems = append(problems, fmt.Sprintf("span %q of %s (%s=%s) is outside the saga's trace", s.Name, s.Service, k, v))
				}
			}
			continue
		}
		spans = append(spans, s)
		byID[s.SpanID] = s
	}
	for _, s := range spans {
		children[s.ParentID] = append(children[s.ParentID], s)
	}
	roots := children[""]
	if len(roots) != 1 || roots[0].Name != "start "+contract.OrderWorkflowType || roots[0].Service != "sagaflow-starter" {
		names := []string{}
		for _, r := range roots {
			names = append(names, r.Service+"/"+r.Name)
		}
		problems = append(problems, fmt.Sprintf("want one root, the starter's start span; got %v", names))
	}
	for _, s := range spans {
		if s.ParentID != "" {
			if _, ok := byID[s.ParentID]; !ok {
				problems = append(problems, fmt.Sprintf("span %q of %s is orphaned: parent %s not in the trace", s.Name, s.Service, s.ParentID))
			}
		}
	}
	count := map[string]int{}
	for _, s := range spans {
		count[s.Name]++
	}
	need := map[string]int{}
	for _, n := range want {
		need[n]++
	}
	for n, k := range need {
		if count[n] < k {
			problems = append(problems, fmt.Sprintf("want %d %q spans, got %d", k, n, count[n]))
		}
	}
	child := func(s systemtest.Span, match func(systemtest.Span) bool) (systemtest.Span, bool) {
		for _, c := range children[s.SpanID] {
			if match(c) {
				return c, true
			}
		}
		return systemtest.Span{}, false
	}
	named := func(n string) func(systemtest.Span) bool { return func(s systemtest.Span) bool { return s.Name == n } }
	prefixed := func(p string) func(systemtest.Span) bool {
		return func(s systemtest.Span) bool { return strings.HasPrefix(s.Name, p) }
	}
	commands := map[string]int{}
	for _, s := range spans {
		var queue, service string
		switch s.Name {
		case "publish " + contract.LedgerQueue:
			queue, service = contract.LedgerQueue, "ledger"
		case "publish " + contract.InventoryQueue:
			queue, service = contract.InventoryQueue, "inventory"
		default:
			continue
		}
		if !strings.HasPrefix(byID[s.ParentID].Name, "RunActivity:") {
			problems = append(problems, fmt.Sprintf("command publish to %s is not a child of an activity", queue))
		}
		commands[queue]++
		proc, ok := child(s, named("process "+queue))
		if !ok {
			problems = append(problems, fmt.Sprintf("command to %s (%s) was not consumed in the trace", queue, s.Attributes["messaging.message.id"]))
			continue
		}
		tx, ok := child(proc, prefixed(service+" handle "))
		if !ok {
			problems = append(problems, fmt.Sprintf("command to %s has no %s transaction span", queue, service))
			continue
		}
		// The reply goes to the shared reply queue (a regular activity)
		// or to the worker's own (a local activity, LocalReplyQueuePrefix).
		replyQueue := func(op string) func(systemtest.Span) bool {
			return func(s systemtest.Span) bool {
				return s.Name == op+" "+contract.ReplyQueue || strings.HasPrefix(s.Name, op+" "+contract.LocalReplyQueuePrefix+".")
			}
		}
		reply, ok := child(tx, replyQueue("publish"))
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: the reply's publish does not continue the transaction", tx.Name))
			continue
		}
		if _, ok := child(reply, replyQueue("process")); !ok {
			problems = append(problems, fmt.Sprintf("%s: the reply was not consumed in the trace", tx.Name))
		}
	}
	if commands[contract.LedgerQueue] == 0 || commands[contract.InventoryQueue] == 0 {
		problems = append(problems, fmt.Sprintf("want commands to both services, got %v", commands))
	}
	for _, typ := range domain {
		found := slices.ContainsFunc(spans, func(s systemtest.Span) bool {
			return strings.HasPrefix(s.Name, "publish ") && s.Attributes["messaging.rabbitmq.destination.routing_key"] == typ &&
				strings.Contains(byID[s.ParentID].Name, " handle ")
		})
		if !found {
			problems = append(problems, fmt.Sprintf("no relay publish of %s continuing its transaction", typ))
		}
	}
	projected := slices.ContainsFunc(spans, func(s systemtest.Span) bool {
		return s.Name == "process "+contract.OrdersProjectionQueue && s.Attributes["messaging.rabbitmq.destination.routing_key"] == final
	})
	if !projected {
		problems = append(problems, fmt.Sprintf("the projection's handling of %s is not in the trace", final))
	}
	return problems
}
