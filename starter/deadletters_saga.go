package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/audit"
)

// The states of a dead letter's saga, as list shows them.
const (
	sagaStateNone     = "-"
	sagaStateNotFound = "not found"
	sagaStateRunning  = "running"
	sagaStateOperator = "waiting for an operator"
)

// messageSaga is the saga a dead letter belongs to. A command or a reply
// names the very activity that waits for it (its correlation id is an
// activities.ActivityRef); an event names its saga by the envelope's
// correlation id.
type messageSaga struct {
	WorkflowID string `json:"workflow_id,omitempty"`
	RunID      string `json:"run_id,omitempty"`
	ActivityID string `json:"activity_id,omitempty"`
}

// sagaOf finds the saga of a dead letter: the activity reference in the
// AMQP correlation id, else that correlation id, else the envelope's
// correlation id, else (an order.placed) the order saga the bridge starts
// for it.
func sagaOf(d amqp.DeadLetter) messageSaga {
	if d.CorrelationID != "" {
		if ref, err := activities.ParseActivityRef(d.CorrelationID); err == nil {
			return messageSaga{WorkflowID: ref.WorkflowID, RunID: ref.RunID, ActivityID: ref.ActivityID}
		}
		return messageSaga{WorkflowID: d.CorrelationID}
	}
	// Read leniently: an undecodable envelope is a typical dead letter.
	var env struct {
		Type          string `json:"type"`
		CorrelationID string `json:"correlationid"`
		Data          struct {
			OrderID string `json:"order_id"`
		} `json:"data"`
	}
	if json.Unmarshal(d.Body, &env) != nil {
		return messageSaga{}
	}
	if env.CorrelationID != "" {
		return messageSaga{WorkflowID: env.CorrelationID}
	}
	if env.Type == events.TypeOrderPlaced && env.Data.OrderID != "" {
		return messageSaga{WorkflowID: contract.OrderWorkflowID(env.Data.OrderID)}
	}
	return messageSaga{}
}

// sagaInfo is what Temporal says of a saga.
type sagaInfo struct {
	// State is running, waiting for an operator, compensating, completed,
	// compensated, cancelled, resolved, failed, terminated, ... or not found.
	State   string
	Exists  bool
	Running bool
	// Pending are the ids of the activities the run waits on.
	Pending map[string]bool
}

// sagaStates describes each saga once per command.
type sagaStates struct {
	tc    client.Client
	cache map[string]sagaInfo
}

func newSagaStates(tc client.Client) *sagaStates {
	return &sagaStates{tc: tc, cache: map[string]sagaInfo{}}
}

// of describes the saga's run (the latest when runID is "").
func (s *sagaStates) of(ctx context.Context, workflowID, runID string) (sagaInfo, error) {
	if workflowID == "" {
		return sagaInfo{State: sagaStateNone}, nil
	}
	key := workflowID + "\x00" + runID
	if info, ok := s.cache[key]; ok {
		return info, nil
	}
	desc, err := s.tc.DescribeWorkflowExecution(ctx, workflowID, runID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		info := sagaInfo{State: sagaStateNotFound}
		s.cache[key] = info
		return info, nil
	case err != nil:
		return sagaInfo{}, fmt.Errorf("describe saga %s: %s", workflowID, shortError(err))
	}
	info := describeSaga(desc)
	s.cache[key] = info
	return info, nil
}

func describeSaga(desc *workflowservice.DescribeWorkflowExecutionResponse) sagaInfo {
	info := sagaInfo{Exists: true, Pending: map[string]bool{}}
	for _, p := range desc.GetPendingActivities() {
		info.Pending[p.GetActivityId()] = true
	}
	status := desc.GetWorkflowExecutionInfo().GetStatus()
	saga := contract.SagaStatus(sagaStatusOf(desc))
	if status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		info.Running = true
		switch saga {
		case contract.StatusCompensationFailed:
			info.State = sagaStateOperator
		case contract.StatusCompensating:
			info.State = "compensating"
		default:
			info.State = sagaStateRunning
		}
		return info
	}
	if saga != "" {
		info.State = strings.ToLower(string(saga))
	} else {
		info.State = audit.EnumWords(status.String(), "WORKFLOW_EXECUTION_STATUS_")
	}
	return info
}

// redriveVerdict says whether the saga behind a dead letter can still use
// it, and why:
//   - a command or a reply names the activity waiting for it: usable while
//     that activity is pending (once it completed, failed or timed out for
//     good, the saga has moved on and a late answer is dropped);
//   - an order.placed is what the bridge starts its order saga from: usable
//     while that saga does not exist, applied once it does;
//   - any other event for the bridge signals its saga: usable while the saga
//     runs;
//   - an event for any other subscriber (a projection, notifications) is a
//     fact that stays true after its saga ended, and the subscriber has not
//     applied it (it acknowledges only what it applied, and it is in its
//     dead letters): usable; a duplicate of an applied one is dropped by id.
func redriveVerdict(d amqp.DeadLetter, s messageSaga, info sagaInfo) (bool, string) {
	switch {
	case s.WorkflowID == "":
		return true, "belongs to no saga"
	case s.ActivityID != "":
		if !info.Exists {
			return false, fmt.Sprintf("saga %s not found: no activity waits for it", s.WorkflowID)
		}
		if info.Pending[s.ActivityID] {
			return true, fmt.Sprintf("activity %s of %s still waits for it", s.ActivityID, s.WorkflowID)
		}
		return false, fmt.Sprintf("activity %s of %s no longer waits for it (saga %s)", s.ActivityID, s.WorkflowID, info.State)
	case d.Type == events.TypeOrderPlaced:
		if !info.Exists {
			return true, fmt.Sprintf("%s not started yet: the bridge starts it from this event", s.WorkflowID)
		}
		return false, fmt.Sprintf("%s already started (saga %s): the event was applied", s.WorkflowID, info.State)
	case d.Consumer == contract.BridgeQueue:
		if info.Running {
			return true, fmt.Sprintf("%s is %s and takes the event", s.WorkflowID, info.State)
		}
		return false, fmt.Sprintf("%s is %s: the event can no longer change it", s.WorkflowID, info.State)
	default:
		return true, fmt.Sprintf("%s has not applied this event", d.Consumer)
	}
}
