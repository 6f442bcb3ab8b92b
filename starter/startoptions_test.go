package main

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/bridge"
)

// recordingTemporal records the workflow starts it is asked for; every
// other client method is out of these tests' reach.
type recordingTemporal struct {
	client.Client
	starts []recordedStart
}

type recordedStart struct {
	opts     client.StartWorkflowOptions
	workflow any
	args     []any
}

func (c *recordingTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error) {
	c.starts = append(c.starts, recordedStart{opts: opts, workflow: workflow, args: args})
	return recordedRun{id: opts.ID}, nil
}

func (c *recordingTemporal) SignalWorkflow(context.Context, string, string, string, any) error {
	return nil
}

type recordedRun struct {
	client.WorkflowRun
	id string
}

func (r recordedRun) GetID() string    { return r.id }
func (r recordedRun) GetRunID() string { return "run-of-" + r.id }

// TestOrderStartsAlikeFromTheCLIAndTheBridge starts the same order with
// `starter order` and through the bridge's order.placed route, and compares
// what each asked Temporal for, field by field: the only difference allowed
// is the bridge's memo of the event that started the saga.
func TestOrderStartsAlikeFromTheCLIAndTheBridge(t *testing.T) {
	cli := &recordingTemporal{}
	var out, errOut bytes.Buffer
	a := newApp(func(string) string { return "" }, &out, &errOut)
	a.temporal = cli
	root := a.rootCommand()
	root.SetArgs([]string{"order", "--id", "o-1", "--customer", "alice", "--merchant", "shop", "--line", "apple:2:1.50"})
	root.SetOut(&out)
	root.SetErr(&errOut)
	require.NoError(t, root.Execute(), "stderr: %s", errOut.String())
	require.Len(t, cli.starts, 1)
	fromCLI := cli.starts[0]
	require.Len(t, fromCLI.args, 1)
	order, ok := fromCLI.args[0].(events.OrderPlaced)
	require.True(t, ok, "the CLI starts the saga with the order.placed payload, got %T", fromCLI.args[0])

	viaBridge := &recordingTemporal{}
	b, err := bridge.New(viaBridge, bridge.Config{})
	require.NoError(t, err)
	env, err := events.New(events.TypeOrderPlaced, "shop-frontend", order, events.WithID("evt-1"))
	require.NoError(t, err)
	m, err := amqp.MessageFromEnvelope(amqp.DefaultExchange, env)
	require.NoError(t, err)
	require.NoError(t, b.Handle(t.Context(), amqp.Delivery{Message: m, Queue: contract.BridgeQueue, Attempt: 1}))
	require.Len(t, viaBridge.starts, 1)
	fromBridge := viaBridge.starts[0]

	require.Equal(t, contract.OrderWorkflowType, fromCLI.workflow)
	require.Equal(t, fromCLI.workflow, fromBridge.workflow)
	require.Equal(t, fromCLI.args, fromBridge.args)

	cliOpts, bridgeOpts := reflect.ValueOf(fromCLI.opts), reflect.ValueOf(fromBridge.opts)
	for i := range cliOpts.NumField() {
		name := cliOpts.Type().Field(i).Name
		if !cliOpts.Type().Field(i).IsExported() {
			continue
		}
		if name == "Memo" {
			continue
		}
		require.Equal(t, cliOpts.Field(i).Interface(), bridgeOpts.Field(i).Interface(), "StartWorkflowOptions.%s", name)
	}
	eventMemo := map[string]any{
		contract.MemoEventID: "evt-1", contract.MemoEventType: events.TypeOrderPlaced, contract.MemoEventSource: "shop-frontend",
	}
	wantMemo := map[string]any{}
	for k, v := range fromCLI.opts.Memo {
		wantMemo[k] = v
	}
	for k, v := range eventMemo {
		wantMemo[k] = v
	}
	require.Equal(t, wantMemo, fromBridge.opts.Memo)
	require.Contains(t, fromCLI.opts.Memo, contract.MemoOrderTotal)
}
