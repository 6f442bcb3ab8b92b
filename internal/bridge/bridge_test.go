package bridge_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/bridge"
)

// startCall and signalCall record what the bridge asked of Temporal.
type startCall struct {
	opts     client.StartWorkflowOptions
	workflow any
	args     []any
}

type signalCall struct {
	workflowID, signal string
	arg                any
}

// fakeTemporal records calls and answers with configured errors.
type fakeTemporal struct {
	mu        sync.Mutex
	starts    []startCall
	signals   []signalCall
	startErr  error
	signalErr error
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, startCall{opts: opts, workflow: wf, args: args})
	if f.startErr != nil {
		return nil, f.startErr
	}
	return fakeRun{id: opts.ID}, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, _, signal string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, signalCall{workflowID: id, signal: signal, arg: arg})
	return f.signalErr
}

type fakeRun struct {
	client.WorkflowRun
	id string
}

func (r fakeRun) GetID() string    { return r.id }
func (r fakeRun) GetRunID() string { return "run-" + r.id }

func validOrder(id string) events.OrderPlaced {
	return events.OrderPlaced{
		OrderID: id, CustomerID: "cust-1", MerchantID: "merchant-1",
		Lines:    []events.OrderLine{{SKU: "sku-1", Quantity: 2, UnitPrice: 150}},
		Currency: "EUR", Total: 300,
	}
}

// delivery wraps an envelope the way the consumer hands it to a handler.
func delivery(t *testing.T, env events.Envelope) amqp.Delivery {
	t.Helper()
	m, err := amqp.MessageFromEnvelope(amqp.DefaultExchange, env)
	require.NoError(t, err)
	return amqp.Delivery{Message: m, Queue: contract.BridgeQueue, Attempt: 1}
}

func envelope(t *testing.T, typ string, p events.Payload, opts ...events.Option) events.Envelope {
	t.Helper()
	env, err := events.New(typ, "test", p, opts...)
	require.NoError(t, err)
	return env
}

// invalidPlacedBody is an order.placed whose total does not match its lines:
// a well-formed envelope whose payload fails validation.
func invalidPlacedBody(t *testing.T, orderID string) []byte {
	t.Helper()
	env := envelope(t, events.TypeOrderPlaced, validOrder(orderID))
	bad := validOrder(orderID)
	bad.Total = 999
	data, err := json.Marshal(bad)
	require.NoError(t, err)
	env.Data = data
	b, err := json.Marshal(env)
	require.NoError(t, err)
	return b
}

func TestHandleStart(t *testing.T) {
	placed := envelope(t, events.TypeOrderPlaced, validOrder("42"),
		events.WithID("evt-1"), events.WithCorrelationID("corr-1"), events.WithCausationID("cause-1"))
	tests := []struct {
		name          string
		startErr      error
		wantErr       bool
		wantPermanent bool
		// wantUnavailable: retried for as long as Temporal is away.
		wantUnavailable bool
		wantStarted     int64
		wantDuplicate   int64
	}{
		{name: "starts the saga", wantStarted: 1},
		{name: "already started is success", startErr: serviceerror.NewWorkflowExecutionAlreadyStarted("exists", "", "run"), wantDuplicate: 1},
		{name: "unavailable Temporal is retried until it is back", startErr: serviceerror.NewUnavailable("down"), wantErr: true, wantUnavailable: true},
		{name: "another failure is retried a bounded number of times", startErr: serviceerror.NewInternal("bug"), wantErr: true},
		{name: "refused argument is permanent", startErr: serviceerror.NewInvalidArgument("unknown search attribute"), wantErr: true, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTemporal{startErr: tt.startErr}
			b, err := bridge.New(ft, bridge.Config{TaskQueue: "orders-q"})
			require.NoError(t, err)
			err = b.Handle(context.Background(), delivery(t, placed))
			if tt.wantErr {
				require.Error(t, err)
				require.Equal(t, tt.wantPermanent, amqp.IsPermanent(err))
				require.Equal(t, tt.wantUnavailable, amqp.IsUnavailable(err))
			} else {
				require.NoError(t, err)
			}
			require.Len(t, ft.starts, 1)
			call := ft.starts[0]
			// The order saga's own start options, plus the event's ids in
			// the memo.
			want := contract.OrderStartOptions(validOrder("42"), "orders-q")
			want.Memo[contract.MemoEventID] = "evt-1"
			want.Memo[contract.MemoEventType] = events.TypeOrderPlaced
			want.Memo[contract.MemoEventSource] = "test"
			want.Memo[contract.MemoCorrelationID] = "corr-1"
			want.Memo[contract.MemoCausationID] = "cause-1"
			require.Equal(t, want, call.opts)
			require.Equal(t, contract.OrderWorkflowType, call.workflow)
			require.Equal(t, []any{validOrder("42")}, call.args)
			require.Equal(t, tt.wantStarted, b.Stats().Started.Load())
			require.Equal(t, tt.wantDuplicate, b.Stats().AlreadyStarted.Load())
		})
	}
}

func TestHandleRejectsWithoutCallingTemporal(t *testing.T) {
	withdrawn := envelope(t, events.TypeFundsWithdrawn, events.FundsWithdrawn{
		AccountID: "acc-1", Amount: events.Money{Amount: 1, Currency: "EUR"}, Balance: events.Money{Amount: 0, Currency: "EUR"},
	})
	tests := []struct {
		name    string
		body    []byte
		wantMsg string
	}{
		{name: "invalid payload", body: invalidPlacedBody(t, "7"), wantMsg: "must equal the sum of the lines"},
		{name: "malformed JSON", body: []byte("{not json"), wantMsg: "decode delivery"},
		{name: "unrouted type", body: delivery(t, withdrawn).Body, wantMsg: `no route for type "funds.withdrawn"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTemporal{}
			b, err := bridge.New(ft, bridge.Config{})
			require.NoError(t, err)
			err = b.Handle(context.Background(), amqp.Delivery{Message: amqp.Message{ID: "m", Body: tt.body}, Attempt: 1})
			require.Error(t, err)
			require.True(t, amqp.IsPermanent(err), "want permanent, got %v", err)
			require.ErrorContains(t, err, tt.wantMsg)
			require.Empty(t, ft.starts)
			require.Empty(t, ft.signals)
			require.Equal(t, int64(1), b.Stats().Rejected.Load())
		})
	}
}

func TestHandleSignal(t *testing.T) {
	cancel := envelope(t, events.TypeOrderCancelRequested, events.OrderCancelRequested{OrderID: "42", Reason: "changed_mind"},
		events.WithID("evt-c"), events.WithCorrelationID("order-42"))
	tests := []struct {
		name               string
		signalErr          error
		notRunningAttempts int
		attempt            int
		wantErr            string
		wantPermanent      bool
		wantUnavailable    bool
		wantSignalled      int64
	}{
		{name: "signals the running saga", attempt: 1, wantSignalled: 1},
		{name: "no saga is dead-lettered at once with the reason when configured so", signalErr: serviceerror.NewNotFound("workflow not found"),
			notRunningAttempts: 1, attempt: 1, wantErr: "order 42 has no running saga", wantPermanent: true},
		{name: "no saga yet is retried by default", signalErr: serviceerror.NewNotFound("workflow not found"), attempt: 1,
			wantErr: "order 42 has no running saga"},
		{name: "no saga yet is retried while attempts remain", signalErr: serviceerror.NewNotFound("workflow not found"),
			notRunningAttempts: 3, attempt: 2, wantErr: "order 42 has no running saga"},
		{name: "no saga after the last attempt is dead-lettered", signalErr: serviceerror.NewNotFound("workflow not found"),
			notRunningAttempts: 3, attempt: 3, wantErr: "order 42 has no running saga", wantPermanent: true},
		{name: "unavailable Temporal is retried until it is back", signalErr: serviceerror.NewUnavailable("down"), attempt: 1, wantErr: "down", wantUnavailable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTemporal{signalErr: tt.signalErr}
			b, err := bridge.New(ft, bridge.Config{NotRunningAttempts: tt.notRunningAttempts})
			require.NoError(t, err)
			d := delivery(t, cancel)
			d.Attempt = tt.attempt
			err = b.Handle(context.Background(), d)
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.wantErr)
				require.Equal(t, tt.wantPermanent, amqp.IsPermanent(err))
				require.Equal(t, tt.wantUnavailable, amqp.IsUnavailable(err))
			}
			require.Equal(t, []signalCall{{workflowID: "order-42", signal: contract.SignalCancel,
				arg: contract.CancelRequest{Reason: "changed_mind", EventID: "evt-c", CorrelationID: "order-42"}}}, ft.signals)
			require.Empty(t, ft.starts)
			require.Equal(t, tt.wantSignalled, b.Stats().Signalled.Load())
		})
	}
}

// TestCustomRoute shows that a saga is added with one route: its event
// type, workflow, start options and input.
func TestCustomRoute(t *testing.T) {
	ft := &fakeTemporal{}
	type audit struct{ Transfer, Event string }
	b, err := bridge.New(ft, bridge.Config{Routes: []bridge.Route{{
		EventType: events.TypeTransferFailed,
		Start: &bridge.StartRoute{
			Workflow: "AuditWorkflow",
			Options: func(p events.Payload, _ string) client.StartWorkflowOptions {
				opts := contract.StartOptions("audit-"+p.(events.TransferFailed).TransferID, "audit")
				opts.Memo = map[string]any{"kind": "audit"}
				return opts
			},
			Input: func(env events.Envelope, p events.Payload) any {
				return audit{Transfer: p.(events.TransferFailed).TransferID, Event: env.ID}
			},
		},
	}}})
	require.NoError(t, err)
	failed := envelope(t, events.TypeTransferFailed, events.TransferFailed{
		TransferID: "t1", SourceAccountID: "a", TargetAccountID: "b",
		Amount: events.Money{Amount: 5, Currency: "EUR"}, Reason: "insufficient_funds",
	}, events.WithID("evt-t"))
	require.NoError(t, b.Handle(context.Background(), delivery(t, failed)))
	require.Len(t, ft.starts, 1)
	require.Equal(t, "audit-t1", ft.starts[0].opts.ID)
	require.Equal(t, "audit", ft.starts[0].opts.TaskQueue)
	require.Equal(t, "AuditWorkflow", ft.starts[0].workflow)
	require.Equal(t, []any{audit{Transfer: "t1", Event: "evt-t"}}, ft.starts[0].args)
	require.Equal(t, "audit", ft.starts[0].opts.Memo["kind"])
	require.Equal(t, "evt-t", ft.starts[0].opts.Memo[contract.MemoEventID])

	// The placed event has no route in this table.
	err = b.Handle(context.Background(), delivery(t, envelope(t, events.TypeOrderPlaced, validOrder("1"))))
	require.True(t, amqp.IsPermanent(err))
}

func TestConfigValidate(t *testing.T) {
	wid := func(events.Payload) string { return "x" }
	opts := func(events.Payload, string) client.StartWorkflowOptions { return contract.StartOptions("x", "") }
	tests := []struct {
		name string
		cfg  bridge.Config
		want []string
	}{
		{name: "defaults are valid", cfg: bridge.Config{}},
		{name: "negative numbers", cfg: bridge.Config{Concurrency: -1, MaxAttempts: -1},
			want: []string{"Concurrency", "MaxAttempts"}},
		{name: "not-running attempts above max", cfg: bridge.Config{MaxAttempts: 2, NotRunningAttempts: 3},
			want: []string{"NotRunningAttempts"}},
		{name: "empty route table", cfg: bridge.Config{Routes: []bridge.Route{}}, want: []string{"no routes"}},
		{name: "bad routes", cfg: bridge.Config{Routes: []bridge.Route{
			{EventType: "nope.nothing", Start: &bridge.StartRoute{Workflow: "W", Options: opts}},
			{EventType: events.TypeOrderPlaced},
			{EventType: events.TypeOrderConfirmed, Start: &bridge.StartRoute{}},
			{EventType: events.TypeOrderConfirmed, Signal: &bridge.SignalRoute{}},
			{EventType: events.CmdLedgerOpen, Signal: &bridge.SignalRoute{WorkflowID: wid, Signal: "s"}},
		}}, want: []string{
			"not a registered event type", "exactly one of Start and Signal", "Start.Workflow is required",
			"Start.Options is required", "declared twice", "Signal.WorkflowID is required", "Signal.Signal is required",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
			_, err = bridge.New(&fakeTemporal{}, tt.cfg)
			require.Error(t, err)
		})
	}
	require.Equal(t, []string{events.TypeOrderPlaced, events.TypeOrderCancelRequested}, bridge.Config{}.Bindings())
	_, err := bridge.New(nil, bridge.Config{})
	require.ErrorContains(t, err, "nil Temporal client")
}
