// Package audit turns a saga's Temporal workflow history into its audit
// trail: a timeline in business terms (each step with its input and outcome,
// retries and their errors, compensations, child sagas, signals, updates,
// timers and the final status). Build is a pure function of the history
// events and an optional describe response, so the same history always
// gives the same trail.
package audit

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/contract"
)

// sagaStatusAttribute is the search attribute the saga helper upserts on
// every status change; its values mark the phases of the timeline.
var sagaStatusAttribute = contract.SagaStatusKey.GetName()

// compensating reports whether the saga helper runs compensations in the
// saga status s.
func compensating(s string) bool {
	switch contract.SagaStatus(s) {
	case contract.StatusCompensating, contract.StatusCompensationFailed:
		return true
	}
	return false
}

// Kind is what a timeline record is about.
type Kind string

// The kinds of records.
const (
	// KindStarted: the workflow started, with its input.
	KindStarted Kind = "started"
	// KindStatus: the saga's status changed (SagaStatus search attribute).
	KindStatus Kind = "status"
	// KindStep: a forward step of the saga (an activity).
	KindStep Kind = "step"
	// KindCompensation: an activity run while the saga compensated.
	KindCompensation Kind = "compensation"
	// KindRetry: a step or compensation needed more than one attempt.
	KindRetry Kind = "retry"
	// KindChild: a child workflow (a child saga), with its workflow id.
	KindChild Kind = "child"
	// KindSignal: a signal the workflow received.
	KindSignal Kind = "signal"
	// KindOperator: an operator's action on a saga waiting for one (the
	// contract.SignalResolve and contract.SignalRetryCompensation signals),
	// with who acted and why.
	KindOperator Kind = "operator"
	// KindSignalSent: a signal the workflow sent to another workflow.
	KindSignalSent Kind = "signal-sent"
	// KindUpdate: an update the workflow accepted, with its outcome.
	KindUpdate Kind = "update"
	// KindTimer: a durable timer, such as a reservation's time-to-live.
	KindTimer Kind = "timer"
	// KindCancelRequested: someone asked to cancel the workflow.
	KindCancelRequested Kind = "cancel-requested"
	// KindClosed: the workflow ended (completed, failed, cancelled,
	// terminated, timed out or continued as new).
	KindClosed Kind = "closed"
)

// Outcomes of records.
const (
	OutcomeCompleted      = "completed"
	OutcomeFailed         = "failed"
	OutcomeTimedOut       = "timed-out"
	OutcomeCanceled       = "canceled"
	OutcomeTerminated     = "terminated"
	OutcomeContinuedAsNew = "continued-as-new"
	OutcomeRunning        = "running"
	OutcomeFired          = "fired"
	OutcomeRejected       = "rejected"
	// OutcomeDeadlinePassed: a step Temporal stopped retrying because its
	// saga's deadline (the activity's schedule-to-close timeout) passed
	// while it still failed for a reason of the infrastructure.
	OutcomeDeadlinePassed = "deadline-passed"
)

// Record is one entry of the timeline.
type Record struct {
	// EventID is the id of the history event the record starts at.
	EventID int64 `json:"event_id"`
	// Time is when it happened (the event time).
	Time time.Time `json:"time"`
	// Kind says what the record is about.
	Kind Kind `json:"kind"`
	// Name is the saga step (the "step" field of an activity's input, else
	// the activity type), the signal, update or timer name, or the child
	// workflow type.
	Name string `json:"name"`
	// Type is the activity type or the child workflow type.
	Type string `json:"type,omitempty"`
	// Summary is the activity's or timer's user metadata summary, if set.
	Summary string `json:"summary,omitempty"`
	// Status is the saga status a KindStatus record sets.
	Status string `json:"status,omitempty"`
	// Input is the decoded input (JSON).
	Input json.RawMessage `json:"input,omitempty"`
	// Outcome is how it ended: completed, failed, timed-out, canceled,
	// running, fired, rejected...
	Outcome string `json:"outcome,omitempty"`
	// Result is the decoded result (JSON).
	Result json.RawMessage `json:"result,omitempty"`
	// Error is the failure message of a failed, timed-out or retried record.
	Error string `json:"error,omitempty"`
	// ErrorType is the application error type (or "timeout:<kind>").
	ErrorType string `json:"error_type,omitempty"`
	// RetryState says why Temporal stopped retrying a failed activity or
	// child (for example "MaximumAttemptsReached", "NonRetryableFailure").
	RetryState string `json:"retry_state,omitempty"`
	// Attempt is the attempt the record ended on (activities, retries).
	Attempt int32 `json:"attempt,omitempty"`
	// NextAttempt is when a pending activity's next attempt is scheduled.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// ClosedAt is when the record's outcome happened.
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// WorkflowID is the child's, the signalled workflow's or the
	// cancelled-by workflow's id.
	WorkflowID string `json:"workflow_id,omitempty"`
	// RunID is the child's run id.
	RunID string `json:"run_id,omitempty"`
	// Identity is who sent a signal, update or cancel request.
	Identity string `json:"identity,omitempty"`
}

// Timeline is the audit trail of one workflow run.
type Timeline struct {
	WorkflowID   string `json:"workflow_id"`
	RunID        string `json:"run_id,omitempty"`
	WorkflowType string `json:"workflow_type"`
	TaskQueue    string `json:"task_queue,omitempty"`
	// Status is the workflow's execution status: Running, Completed,
	// Failed, Canceled, Terminated, TimedOut or ContinuedAsNew.
	Status string `json:"status"`
	// SagaStatus is the saga's last status (SagaStatus search attribute).
	SagaStatus string          `json:"saga_status,omitempty"`
	StartTime  time.Time       `json:"start_time"`
	CloseTime  time.Time       `json:"close_time,omitzero"`
	Input      json.RawMessage `json:"input,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	// EncryptedKeys are the ids of the keys payloads are encrypted with
	// that the data converter could not decrypt: those inputs, results and
	// errors show as "<encrypted with key ID>".
	EncryptedKeys []string `json:"encrypted_keys,omitempty"`
	// Version is the Worker Deployment version (the build) the workflow
	// is on according to Temporal (describe); nil for an unversioned
	// workflow or without a describe response.
	Version *Version `json:"version,omitempty"`
	// Versions are the versions its workflow tasks completed on, in
	// history order, one entry per run of consecutive tasks on the same
	// build: a pinned saga has one. Empty for an unversioned workflow.
	Versions []Version `json:"versions,omitempty"`
	// TraceID is the saga's OpenTelemetry trace id, from its memo
	// (contract.MemoTraceID); empty when it was started with tracing off.
	TraceID string `json:"trace_id,omitempty"`
	// Records are in history order.
	Records []Record `json:"records"`
}

// Options tune Build.
type Options struct {
	// DataConverter decodes payloads. Default
	// converter.GetDefaultDataConverter().
	DataConverter converter.DataConverter
}

// builder holds the state of one Build.
type builder struct {
	dc       converter.DataConverter
	tl       Timeline
	status   string         // current saga status while walking
	byEvent  map[int64]int  // scheduling/initiating event id -> record index
	byUpdate map[string]int // update protocol instance id -> record index
	byTimer  map[string]int // timer id -> record index
	activity map[string]int // activity id -> record index
	locked   []string       // key ids of payloads dc could not decrypt
	// taskStarted is when the last workflow task started: a local
	// activity recorded by that task ran inside it.
	taskStarted time.Time
}

// Build makes the timeline of a workflow run from its history events, in
// order, and optionally its describe response, which adds what the history
// does not hold yet: the attempts and last failures of activities still
// retrying, and the search attributes of a running workflow.
func Build(events []*historypb.HistoryEvent, desc *workflowservice.DescribeWorkflowExecutionResponse, opts Options) Timeline {
	if opts.DataConverter == nil {
		opts.DataConverter = converter.GetDefaultDataConverter()
	}
	b := &builder{
		dc:       opts.DataConverter,
		byEvent:  map[int64]int{},
		byUpdate: map[string]int{},
		byTimer:  map[string]int{},
		activity: map[string]int{},
		tl:       Timeline{Status: "Running", Records: []Record{}},
	}
	for _, e := range events {
		b.event(e)
	}
	b.describe(desc)
	b.tl.EncryptedKeys = b.locked
	return b.tl
}

func (b *builder) add(r Record) int {
	b.tl.Records = append(b.tl.Records, r)
	return len(b.tl.Records) - 1
}

// rec returns the record started by event id, or nil.
func (b *builder) rec(eventID int64) *Record {
	if i, ok := b.byEvent[eventID]; ok {
		return &b.tl.Records[i]
	}
	return nil
}

func (b *builder) event(e *historypb.HistoryEvent) {
	at := e.GetEventTime().AsTime()
	id := e.GetEventId()
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		a := e.GetWorkflowExecutionStartedEventAttributes()
		b.tl.WorkflowID = a.GetWorkflowId()
		b.tl.RunID = a.GetOriginalExecutionRunId()
		b.tl.WorkflowType = a.GetWorkflowType().GetName()
		b.tl.TaskQueue = a.GetTaskQueue().GetName()
		b.tl.StartTime = at
		b.tl.Input = b.payloads(a.GetInput())
		if id := TraceID(a.GetMemo(), b.dc); id != "" {
			b.tl.TraceID = id
		}
		r := Record{EventID: id, Time: at, Kind: KindStarted, Name: b.tl.WorkflowType, Input: b.tl.Input, Identity: a.GetIdentity()}
		if p := a.GetParentWorkflowExecution(); p != nil {
			r.WorkflowID = p.GetWorkflowId()
		}
		b.add(r)
		b.upsert(id, at, a.GetSearchAttributes())

	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
		b.taskCompleted(id, e.GetWorkflowTaskCompletedEventAttributes())

	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		b.upsert(id, at, e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes())

	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a := e.GetActivityTaskScheduledEventAttributes()
		typ := a.GetActivityType().GetName()
		input := b.payloads(a.GetInput())
		summary := b.summary(e)
		kind := KindStep
		if compensating(b.status) || isCompensationSummary(summary) {
			kind = KindCompensation
		}
		name := stepOf(input)
		if name == "" {
			name = typ
		}
		i := b.add(Record{EventID: id, Time: at, Kind: kind, Name: name, Type: typ, Summary: summary, Input: input, Outcome: OutcomeRunning})
		b.byEvent[id] = i
		b.activity[a.GetActivityId()] = i

	case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
		a := e.GetActivityTaskStartedEventAttributes()
		r := b.rec(a.GetScheduledEventId())
		if r == nil {
			return
		}
		r.Attempt = a.GetAttempt()
		if a.GetAttempt() > 1 {
			// The history keeps only the last attempt's start, with the
			// failure of the attempt before it.
			msg, typ := b.failureText(a.GetLastFailure())
			b.add(Record{EventID: id, Time: at, Kind: KindRetry, Name: r.Name, Type: r.Type,
				Attempt: a.GetAttempt(), Error: msg, ErrorType: typ})
		}

	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		a := e.GetActivityTaskCompletedEventAttributes()
		if r := b.rec(a.GetScheduledEventId()); r != nil {
			r.Outcome, r.ClosedAt, r.Result = OutcomeCompleted, at, b.payloads(a.GetResult())
		}

	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		a := e.GetActivityTaskFailedEventAttributes()
		if r := b.rec(a.GetScheduledEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeFailed, at
			r.Error, r.ErrorType = b.failureText(a.GetFailure())
			r.RetryState = retryState(a.GetRetryState())
			deadlinePassed(r)
		}

	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		a := e.GetActivityTaskTimedOutEventAttributes()
		if r := b.rec(a.GetScheduledEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeTimedOut, at
			r.Error, r.ErrorType = b.failureText(a.GetFailure())
			r.RetryState = retryState(a.GetRetryState())
			deadlinePassed(r)
		}

	case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
		a := e.GetActivityTaskCanceledEventAttributes()
		if r := b.rec(a.GetScheduledEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeCanceled, at
		}

	case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
		b.taskStarted = at

	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		if a := e.GetMarkerRecordedEventAttributes(); a.GetMarkerName() == localActivityMarker {
			b.localActivity(e, a)
		}

	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
		a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes()
		i := b.add(Record{EventID: id, Time: at, Kind: KindChild, Name: a.GetWorkflowType().GetName(),
			Type: a.GetWorkflowType().GetName(), Input: b.payloads(a.GetInput()), WorkflowID: a.GetWorkflowId(),
			Summary: b.summary(e), Outcome: OutcomeRunning})
		b.byEvent[id] = i

	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
		a := e.GetStartChildWorkflowExecutionFailedEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeFailed, at
			r.Error = "child workflow not started: " + EnumWords(a.GetCause().String(), "START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_")
		}

	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
		a := e.GetChildWorkflowExecutionStartedEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.RunID = a.GetWorkflowExecution().GetRunId()
		}

	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
		a := e.GetChildWorkflowExecutionCompletedEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt, r.Result = OutcomeCompleted, at, b.payloads(a.GetResult())
		}

	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
		a := e.GetChildWorkflowExecutionFailedEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeFailed, at
			r.Error, r.ErrorType = b.failureText(a.GetFailure())
			r.RetryState = retryState(a.GetRetryState())
		}

	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
		a := e.GetChildWorkflowExecutionCanceledEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeCanceled, at
		}

	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
		a := e.GetChildWorkflowExecutionTimedOutEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeTimedOut, at
			r.RetryState = retryState(a.GetRetryState())
		}

	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
		a := e.GetChildWorkflowExecutionTerminatedEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeTerminated, at
		}

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		a := e.GetWorkflowExecutionSignaledEventAttributes()
		kind := KindSignal
		if n := a.GetSignalName(); n == contract.SignalResolve || n == contract.SignalRetryCompensation {
			kind = KindOperator
		}
		b.add(Record{EventID: id, Time: at, Kind: kind, Name: a.GetSignalName(),
			Input: b.payloads(a.GetInput()), Identity: a.GetIdentity()})

	case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
		a := e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes()
		i := b.add(Record{EventID: id, Time: at, Kind: KindSignalSent, Name: a.GetSignalName(),
			Input: b.payloads(a.GetInput()), WorkflowID: a.GetWorkflowExecution().GetWorkflowId(), Outcome: OutcomeRunning})
		b.byEvent[id] = i

	case enumspb.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED:
		a := e.GetExternalWorkflowExecutionSignaledEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeCompleted, at
		}

	case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
		a := e.GetSignalExternalWorkflowExecutionFailedEventAttributes()
		if r := b.rec(a.GetInitiatedEventId()); r != nil {
			r.Outcome, r.ClosedAt = OutcomeFailed, at
			r.Error = EnumWords(a.GetCause().String(), "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_")
		}

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		a := e.GetWorkflowExecutionUpdateAcceptedEventAttributes()
		in := a.GetAcceptedRequest().GetInput()
		i := b.add(Record{EventID: id, Time: at, Kind: KindUpdate, Name: in.GetName(),
			Input: b.payloads(in.GetArgs()), Identity: a.GetAcceptedRequest().GetMeta().GetIdentity(), Outcome: OutcomeRunning})
		b.byUpdate[a.GetProtocolInstanceId()] = i

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
		a := e.GetWorkflowExecutionUpdateCompletedEventAttributes()
		i, ok := b.byUpdate[a.GetMeta().GetUpdateId()]
		if !ok {
			return
		}
		r := &b.tl.Records[i]
		r.ClosedAt = at
		if f := a.GetOutcome().GetFailure(); f != nil {
			r.Outcome = OutcomeFailed
			r.Error, r.ErrorType = b.failureText(f)
		} else {
			r.Outcome, r.Result = OutcomeCompleted, b.payloads(a.GetOutcome().GetSuccess())
		}

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED:
		a := e.GetWorkflowExecutionUpdateRejectedEventAttributes()
		in := a.GetRejectedRequest().GetInput()
		msg, typ := b.failureText(a.GetFailure())
		b.add(Record{EventID: id, Time: at, Kind: KindUpdate, Name: in.GetName(), Input: b.payloads(in.GetArgs()),
			Outcome: OutcomeRejected, Error: msg, ErrorType: typ, ClosedAt: at})

	case enumspb.EVENT_TYPE_TIMER_STARTED:
		a := e.GetTimerStartedEventAttributes()
		d := a.GetStartToFireTimeout().AsDuration()
		in, _ := json.Marshal(map[string]string{"duration": d.String(), "fires_at": at.Add(d).UTC().Format(time.RFC3339Nano)})
		i := b.add(Record{EventID: id, Time: at, Kind: KindTimer, Name: a.GetTimerId(), Summary: b.summary(e),
			Input: in, Outcome: OutcomeRunning})
		b.byTimer[a.GetTimerId()] = i

	case enumspb.EVENT_TYPE_TIMER_FIRED:
		a := e.GetTimerFiredEventAttributes()
		if i, ok := b.byTimer[a.GetTimerId()]; ok {
			b.tl.Records[i].Outcome, b.tl.Records[i].ClosedAt = OutcomeFired, at
		}

	case enumspb.EVENT_TYPE_TIMER_CANCELED:
		a := e.GetTimerCanceledEventAttributes()
		if i, ok := b.byTimer[a.GetTimerId()]; ok {
			b.tl.Records[i].Outcome, b.tl.Records[i].ClosedAt = OutcomeCanceled, at
		}

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
		a := e.GetWorkflowExecutionCancelRequestedEventAttributes()
		r := Record{EventID: id, Time: at, Kind: KindCancelRequested, Name: "cancel", Identity: a.GetIdentity()}
		if a.GetCause() != "" {
			r.Input, _ = json.Marshal(map[string]string{"cause": a.GetCause()})
		}
		if ex := a.GetExternalWorkflowExecution(); ex != nil {
			r.WorkflowID = ex.GetWorkflowId()
		}
		b.add(r)

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		res := b.payloads(e.GetWorkflowExecutionCompletedEventAttributes().GetResult())
		b.close(id, at, "Completed", OutcomeCompleted, res, nil)

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		a := e.GetWorkflowExecutionFailedEventAttributes()
		b.close(id, at, "Failed", OutcomeFailed, nil, a.GetFailure())
		b.tl.Records[len(b.tl.Records)-1].RetryState = retryState(a.GetRetryState())

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		res := b.payloads(e.GetWorkflowExecutionCanceledEventAttributes().GetDetails())
		b.close(id, at, "Canceled", OutcomeCanceled, res, nil)

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		a := e.GetWorkflowExecutionTerminatedEventAttributes()
		b.close(id, at, "Terminated", OutcomeTerminated, nil, nil)
		r := &b.tl.Records[len(b.tl.Records)-1]
		r.Error, r.Identity = a.GetReason(), a.GetIdentity()
		b.tl.Error = a.GetReason()

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		b.close(id, at, "TimedOut", OutcomeTimedOut, nil, nil)

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		a := e.GetWorkflowExecutionContinuedAsNewEventAttributes()
		b.close(id, at, "ContinuedAsNew", OutcomeContinuedAsNew, nil, nil)
		b.tl.Records[len(b.tl.Records)-1].RunID = a.GetNewExecutionRunId()
	}
}

// localActivityMarker is the name of the marker the Go SDK records a local
// activity's outcome with: its details hold "data" (the activity type and
// attempt) and, when it returned one, "result"; its failure is the
// marker's.
const localActivityMarker = "LocalActivity"

// localActivityData is the part of a local activity marker's "data" detail
// the trail shows (the SDK's localActivityMarkerData).
type localActivityData struct {
	ActivityType string
	Attempt      int32
}

// localActivity records a local activity from its marker. Its input is not
// in the history, so its step is the result's "step" field, else the
// summary the workflow gave it, else its type, and its input the result's
// "input" field, if any. It ran inside the workflow
// task that recorded it: the record starts when that task started, or at
// the record before it if that is later, so the timeline stays in order.
func (b *builder) localActivity(e *historypb.HistoryEvent, a *historypb.MarkerRecordedEventAttributes) {
	at := e.GetEventTime().AsTime()
	var data localActivityData
	if ps := a.GetDetails()["data"].GetPayloads(); len(ps) > 0 {
		if err := b.dc.FromPayload(ps[0], &data); err != nil {
			b.encrypted(ps[0])
		}
	}
	summary := b.summary(e)
	result := b.payloads(a.GetDetails()["result"])
	name := stepOf(result)
	switch {
	case name != "":
	case summary != "":
		name, summary = summary, ""
	case data.ActivityType != "":
		name = data.ActivityType
	default:
		name = "local activity"
	}
	kind := KindStep
	if compensating(b.status) || isCompensationSummary(summary) || isCompensationSummary(name) {
		kind = KindCompensation
	}
	start := b.taskStarted
	if n := len(b.tl.Records); n > 0 && start.Before(b.tl.Records[n-1].Time) {
		// Records the same task made before it keep the timeline in order.
		start = b.tl.Records[n-1].Time
	}
	if start.IsZero() || start.After(at) {
		start = at
	}
	r := Record{EventID: e.GetEventId(), Time: start, Kind: kind, Name: name, Type: data.ActivityType, Summary: summary,
		Input: inputOf(result), Outcome: OutcomeCompleted, Result: result, Attempt: data.Attempt, ClosedAt: at}
	if f := a.GetFailure(); f != nil {
		r.Outcome, r.Result = OutcomeFailed, nil
		r.Error, r.ErrorType = b.failureText(f)
	}
	b.add(r)
	if data.Attempt > 1 {
		// The attempts before ran in the worker and left no event.
		b.add(Record{EventID: e.GetEventId(), Time: start, Kind: KindRetry, Name: name, Type: data.ActivityType, Attempt: data.Attempt})
	}
}

func (b *builder) close(id int64, at time.Time, status, outcome string, result json.RawMessage, f *failurepb.Failure) {
	b.tl.Status, b.tl.CloseTime, b.tl.Result = status, at, result
	r := Record{EventID: id, Time: at, Kind: KindClosed, Name: status, Outcome: outcome, Result: result, ClosedAt: at}
	if f != nil {
		r.Error, r.ErrorType = b.failureText(f)
		b.tl.Error = r.Error
	}
	b.add(r)
}

// upsert records a change of the saga status.
func (b *builder) upsert(id int64, at time.Time, sa *commonpb.SearchAttributes) {
	p, ok := sa.GetIndexedFields()[sagaStatusAttribute]
	if !ok {
		return
	}
	var status string
	if err := b.dc.FromPayload(p, &status); err != nil || status == b.status {
		return
	}
	b.status = status
	b.tl.SagaStatus = status
	b.add(Record{EventID: id, Time: at, Kind: KindStatus, Name: sagaStatusAttribute, Status: status})
}

// describe adds the pending activities' attempts and the search attributes
// of a workflow that is still running.
func (b *builder) describe(desc *workflowservice.DescribeWorkflowExecutionResponse) {
	if desc == nil {
		return
	}
	info := desc.GetWorkflowExecutionInfo()
	if b.tl.WorkflowID == "" {
		b.tl.WorkflowID = info.GetExecution().GetWorkflowId()
		b.tl.RunID = info.GetExecution().GetRunId()
		b.tl.WorkflowType = info.GetType().GetName()
	}
	b.tl.Version = DescribedVersion(info)
	if id := TraceID(info.GetMemo(), b.dc); id != "" {
		b.tl.TraceID = id
	}
	if p, ok := info.GetSearchAttributes().GetIndexedFields()[sagaStatusAttribute]; ok {
		var status string
		if b.dc.FromPayload(p, &status) == nil && status != "" {
			b.tl.SagaStatus = status
		}
	}
	for _, pa := range desc.GetPendingActivities() {
		i, ok := b.activity[pa.GetActivityId()]
		if !ok {
			continue
		}
		r := &b.tl.Records[i]
		if r.Outcome != OutcomeRunning {
			continue
		}
		r.Attempt = pa.GetAttempt()
		if f := pa.GetLastFailure(); f != nil {
			r.Error, r.ErrorType = b.failureText(f)
		}
		if t := pa.GetNextAttemptScheduleTime(); t != nil {
			r.NextAttempt = t.AsTime()
		}
	}
}

// payloads decodes payloads to compact JSON: one payload as itself, several
// as an array. Undecodable payloads show the converter's string form.
func (b *builder) payloads(ps *commonpb.Payloads) json.RawMessage {
	items := ps.GetPayloads()
	if len(items) == 0 {
		return nil
	}
	vals := make([]json.RawMessage, 0, len(items))
	for _, p := range items {
		vals = append(vals, b.payload(p))
	}
	if len(vals) == 1 {
		return vals[0]
	}
	out, _ := json.Marshal(vals)
	return out
}

func (b *builder) payload(p *commonpb.Payload) json.RawMessage {
	var v any
	if err := b.dc.FromPayload(p, &v); err == nil {
		if out, err := json.Marshal(v); err == nil {
			return out
		}
	} else if placeholder, ok := b.encrypted(p); ok {
		// Marshal would escape the angle brackets.
		return json.RawMessage(strconv.Quote(placeholder))
	}
	out, _ := json.Marshal(b.dc.ToString(p))
	return out
}

// encrypted returns what an encrypted payload the data converter could
// not decode shows instead, and notes its key.
func (b *builder) encrypted(p *commonpb.Payload) (string, bool) {
	id, ok := codec.KeyIDOf(p)
	if !ok {
		return "", false
	}
	if !slices.Contains(b.locked, id) {
		b.locked = append(b.locked, id)
	}
	return "<encrypted with key " + id + ">", true
}

func (b *builder) summary(e *historypb.HistoryEvent) string {
	p := e.GetUserMetadata().GetSummary()
	if p == nil {
		return ""
	}
	var s string
	if b.dc.FromPayload(p, &s) != nil {
		return ""
	}
	return s
}

// isCompensationSummary recognises activities labelled as compensations
// ("compensate: refund") even outside a Compensating phase, for sagas that
// undo a step inline.
func isCompensationSummary(s string) bool {
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "compensate") || strings.HasPrefix(s, "compensation")
}

// deadlinePassed says in business terms that an activity ended because
// Temporal stopped retrying it at its schedule-to-close timeout, which the
// sagas set to their deadline: the next attempt would have started after
// it (retry state Timeout) or it passed during an attempt.
func deadlinePassed(r *Record) {
	if r.RetryState != "Timeout" && r.ErrorType != "timeout:ScheduleToClose" {
		return
	}
	r.Outcome = OutcomeDeadlinePassed
	if r.Error != "" {
		r.Error = "gave up at the saga's deadline, still failing: " + r.Error
	} else {
		r.Error = "gave up at the saga's deadline"
	}
}

// stepOf returns the "step" field of an activity input object.
// inputOf is the "input" field of a local activity's result: a command
// step run locally returns its input, which the history does not record.
func inputOf(result json.RawMessage) json.RawMessage {
	var v struct {
		Input json.RawMessage `json:"input"`
	}
	if json.Unmarshal(result, &v) != nil || len(v.Input) == 0 {
		return nil
	}
	return v.Input
}

func stepOf(input json.RawMessage) string {
	var v struct {
		Step string `json:"step"`
	}
	if json.Unmarshal(input, &v) != nil {
		return ""
	}
	return v.Step
}

// failureText returns a failure's message with its causes (each once) and
// the first application error type in the chain, or the timeout kind.
// Messages a failure converter moved into encoded attributes (to encrypt
// them) are decoded.
func (b *builder) failureText(f *failurepb.Failure) (msg, typ string) {
	var parts []string
	for c := f; c != nil; c = c.GetCause() {
		m := c.GetMessage()
		if ea := c.GetEncodedAttributes(); ea != nil {
			var attrs struct {
				Message string `json:"message"`
			}
			if err := b.dc.FromPayload(ea, &attrs); err == nil {
				m = attrs.Message
			} else if placeholder, ok := b.encrypted(ea); ok {
				m = placeholder
			}
		}
		if m != "" && !containsAny(parts, m) {
			parts = append(parts, m)
		}
		if typ != "" {
			continue
		}
		if a := c.GetApplicationFailureInfo(); a != nil && a.GetType() != "" {
			typ = a.GetType()
		} else if t := c.GetTimeoutFailureInfo(); t != nil {
			typ = "timeout:" + enumName(t.GetTimeoutType().String(), "TIMEOUT_TYPE_")
		} else if c.GetCanceledFailureInfo() != nil {
			typ = "canceled"
		}
	}
	return strings.Join(parts, ": "), typ
}

func containsAny(parts []string, m string) bool {
	for _, p := range parts {
		if strings.Contains(p, m) {
			return true
		}
	}
	return false
}

func retryState(s enumspb.RetryState) string {
	if s == enumspb.RETRY_STATE_UNSPECIFIED {
		return ""
	}
	return enumName(s.String(), "RETRY_STATE_")
}

// enumName turns "RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED" into
// "MaximumAttemptsReached".
// EnumWords is an enum value as lower-case words: "WorkflowAlreadyExists"
// (or "PREFIX_WORKFLOW_ALREADY_EXISTS") is "workflow already exists".
func EnumWords(s, prefix string) string {
	var out strings.Builder
	for i, r := range enumName(s, prefix) {
		if unicode.IsUpper(r) && i > 0 {
			out.WriteByte(' ')
		}
		out.WriteRune(unicode.ToLower(r))
	}
	return out.String()
}

func enumName(s, prefix string) string {
	if !strings.Contains(s, "_") {
		return s // the API's enums already print as "MaximumAttemptsReached"
	}
	s = strings.TrimPrefix(s, prefix)
	var out strings.Builder
	for _, w := range strings.Split(strings.ToLower(s), "_") {
		if w == "" {
			continue
		}
		out.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return out.String()
}

// TraceID is the trace id a saga's memo carries (contract.MemoTraceID),
// decoded with dc; "" when the memo has none or it does not decode (a key
// the converter lacks).
func TraceID(memo *commonpb.Memo, dc converter.DataConverter) string {
	p, ok := memo.GetFields()[contract.MemoTraceID]
	if !ok {
		return ""
	}
	var id string
	if dc.FromPayload(p, &id) != nil {
		return ""
	}
	return id
}
