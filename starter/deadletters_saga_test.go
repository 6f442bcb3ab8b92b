package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

func TestSagaOfADeadLetter(t *testing.T) {
	ref := activities.ActivityRef{Namespace: "default", WorkflowID: "transfer-1", RunID: "r1", ActivityID: "7"}.String()
	tests := []struct {
		name string
		d    amqp.DeadLetter
		want messageSaga
	}{
		{"command names its activity", dl(events.CmdLedgerWithdraw, ref, ""), messageSaga{WorkflowID: "transfer-1", RunID: "r1", ActivityID: "7"}},
		{"event by its correlation id", dl(events.TypeFundsWithdrawn, "transfer-1", ""), messageSaga{WorkflowID: "transfer-1"}},
		{"envelope correlation id", dl("", "", `{"type":"funds.withdrawn","correlationid":"transfer-2"}`), messageSaga{WorkflowID: "transfer-2"}},
		{"order.placed names the saga it starts", dl("", "", `{"type":"order.placed","data":{"order_id":"o-9"}}`), messageSaga{WorkflowID: contract.OrderWorkflowID("o-9")}},
		{"undecodable", dl("", "", `not json`), messageSaga{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, sagaOf(tc.d))
		})
	}
}

func dl(typ, corr, body string) amqp.DeadLetter {
	d := amqp.DeadLetter{Consumer: "orders-projection"}
	d.Type, d.CorrelationID, d.Body = typ, corr, []byte(body)
	return d
}

func TestRedriveVerdict(t *testing.T) {
	running := sagaInfo{State: sagaStateRunning, Exists: true, Running: true, Pending: map[string]bool{"7": true}}
	ended := sagaInfo{State: "compensated", Exists: true, Pending: map[string]bool{}}
	missing := sagaInfo{State: sagaStateNotFound}
	bridge := func(typ string) amqp.DeadLetter {
		d := dl(typ, "order-1", "")
		d.Consumer = contract.BridgeQueue
		return d
	}
	tests := []struct {
		name string
		d    amqp.DeadLetter
		s    messageSaga
		info sagaInfo
		ok   bool
		why  string
	}{
		{"no saga", dl("x", "", ""), messageSaga{}, sagaInfo{State: sagaStateNone}, true, "belongs to no saga"},
		{"activity waits", dl(events.CmdLedgerWithdraw, "", ""), messageSaga{WorkflowID: "t", ActivityID: "7"}, running, true, "activity 7 of t still waits for it"},
		{"activity done", dl(events.CmdLedgerWithdraw, "", ""), messageSaga{WorkflowID: "t", ActivityID: "8"}, running, false, "activity 8 of t no longer waits for it (saga running)"},
		{"saga gone", dl(events.TypeCommandReplied, "", ""), messageSaga{WorkflowID: "t", ActivityID: "7"}, missing, false, "saga t not found"},
		{"order not started", bridge(events.TypeOrderPlaced), messageSaga{WorkflowID: "order-1"}, missing, true, "not started yet"},
		{"order started", bridge(events.TypeOrderPlaced), messageSaga{WorkflowID: "order-1"}, ended, false, "already started (saga compensated)"},
		{"cancel for a running saga", bridge(events.TypeOrderCancelRequested), messageSaga{WorkflowID: "order-1"}, running, true, "order-1 is running and takes the event"},
		{"cancel for an ended saga", bridge(events.TypeOrderCancelRequested), messageSaga{WorkflowID: "order-1"}, ended, false, "order-1 is compensated: the event can no longer change it"},
		{"fact for a projection", dl(events.TypeFundsWithdrawn, "", ""), messageSaga{WorkflowID: "t"}, ended, true, "orders-projection has not applied this event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := redriveVerdict(tc.d, tc.s, tc.info)
			require.Equal(t, tc.ok, ok, why)
			require.Contains(t, why, tc.why)
		})
	}
}
