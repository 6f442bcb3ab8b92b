package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/temporalerr"
)

// Application error types of business rejections, derived from the reply's
// reason by RejectionType. Workflows list them in NonRetryableErrorTypes and
// branch on them; they are never retried because the service decided.
const (
	ErrTypeInsufficientFunds  = "InsufficientFunds"
	ErrTypeAccountClosed      = "AccountClosed"
	ErrTypeAccountFrozen      = "AccountFrozen"
	ErrTypeUnknownAccount     = "UnknownAccount"
	ErrTypeCurrencyMismatch   = "CurrencyMismatch"
	ErrTypeInvalidAmount      = "InvalidAmount"
	ErrTypeUnknownSKU         = "UnknownSku"
	ErrTypeInsufficientStock  = "InsufficientStock"
	ErrTypeUnknownReservation = "UnknownReservation"
	ErrTypeInvalidQuantity    = "InvalidQuantity"
	ErrTypeReservationNotHeld = "ReservationNotHeld"
)

// Application error types of an activity that cannot do its job with the
// input it was given: retrying the same input fails the same way, so they
// are non-retryable.
const (
	// ErrTypeInvalidCommand: the command could not be built (a missing
	// step, an invalid payload).
	ErrTypeInvalidCommand = "InvalidCommand"
	// ErrTypeInvalidEvent: the event to publish could not be built (an
	// unexpected type, a missing step, an invalid payload).
	ErrTypeInvalidEvent = "InvalidEvent"
)

// LedgerRejectionTypes returns the rejection types a ledger command can end
// with; workflows list them in NonRetryableErrorTypes.
func LedgerRejectionTypes() []string {
	return []string{
		ErrTypeInsufficientFunds, ErrTypeAccountClosed, ErrTypeAccountFrozen,
		ErrTypeUnknownAccount, ErrTypeCurrencyMismatch, ErrTypeInvalidAmount,
	}
}

// RejectionType turns a reply reason ("insufficient_funds") into the
// application error type ("InsufficientFunds") the activity fails with.
func RejectionType(reason string) string {
	var b strings.Builder
	for _, part := range strings.Split(reason, "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]))
		b.WriteString(part[1:])
	}
	if b.Len() == 0 {
		return "Rejected"
	}
	return b.String()
}

// RejectionReason returns the reply reason ("insufficient_funds") of an
// activity error that is a business rejection, and false otherwise.
func RejectionReason(err error) (string, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || !appErr.HasDetails() {
		return "", false
	}
	var reason string
	if appErr.Details(&reason) != nil || reason == "" {
		return "", false
	}
	return reason, true
}

// RejectionError is the non-retryable error an activity completes with when
// the service rejected its command. The reply's reason is the error's detail,
// read back with RejectionReason.
func RejectionError(r events.Reply) error {
	msg := fmt.Sprintf("%s %s rejected: %s", r.CommandType, r.CommandID, r.Reason)
	if r.Message != "" {
		msg += ": " + r.Message
	}
	// The reply's result is the second detail: a refused reservation lists its
	// failing lines there.
	return temporal.NewNonRetryableApplicationError(msg, RejectionType(r.Reason), nil, r.Reason, r.Result)
}

func nonRetryable(err error, typ string) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, err)
}

// ActivityRef identifies a pending activity; it travels as a command's
// correlation id and comes back on the reply.
type ActivityRef struct {
	Namespace  string
	WorkflowID string
	RunID      string
	ActivityID string
}

// String encodes the reference as a query string, safe for any id.
func (r ActivityRef) String() string {
	v := url.Values{}
	v.Set("ns", r.Namespace)
	v.Set("wf", r.WorkflowID)
	v.Set("run", r.RunID)
	v.Set("act", r.ActivityID)
	return v.Encode()
}

// ParseActivityRef decodes a correlation id made by ActivityRef.String.
func ParseActivityRef(s string) (ActivityRef, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return ActivityRef{}, fmt.Errorf("parse activity ref %q: %w", s, err)
	}
	r := ActivityRef{Namespace: v.Get("ns"), WorkflowID: v.Get("wf"), RunID: v.Get("run"), ActivityID: v.Get("act")}
	if r.Namespace == "" || r.WorkflowID == "" || r.ActivityID == "" {
		return ActivityRef{}, fmt.Errorf("activity ref %q lacks namespace, workflow id or activity id", s)
	}
	return r, nil
}

// ReplyConsumerConfig is the configuration of the consumer of a reply queue,
// whose handler is HandleReply. Replies are sent straight to the queue, and
// the consumer does not deduplicate: a service answers a resent command id
// (an activity learning whether its step took effect) with its stored reply
// under the same message id, and only that copy completes the new activity.
// A reply seen twice is harmless, since HandleReply drops a reply whose
// activity no longer waits.
func ReplyConsumerConfig(queue string) amqp.ConsumerConfig {
	return amqp.ConsumerConfig{
		Name:        queue,
		Exchange:    "",
		Concurrency: 16,
		Prefetch:    64,
		Dedup:       amqp.NoDedup{},
	}
}

// HandleReply is the amqp.Handler of the worker's reply queue: it completes
// the activity named by the reply's correlation id with the reply. An
// acceptance completes it with a CommandResult, a rejection with
// RejectionError. A reply for an activity that no longer waits (completed,
// timed out and retried, or its workflow closed) is acknowledged and logged:
// retrying it could never succeed. A reply Temporal could not take because
// it was unreachable is retried (amqp.Unavailable) until it can, however
// long the outage. An undecodable reply is dead-lettered.
func (a *Activities) HandleReply(ctx context.Context, d amqp.Delivery) error {
	_, reply, err := events.DecodeAs[events.Reply](d.Body)
	if err != nil {
		return amqp.Permanent(fmt.Errorf("decode reply %s: %w", d.ID, err))
	}
	ref, err := ParseActivityRef(d.CorrelationID)
	if err != nil {
		return amqp.Permanent(err)
	}
	var result any
	res, actErr := replyOutcome(reply)
	if actErr == nil {
		result = res
	}
	err = a.completer.CompleteActivityByID(ctx, ref.Namespace, ref.WorkflowID, ref.RunID, ref.ActivityID, result, actErr)
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notFound):
		a.logger.InfoContext(ctx, "Reply for an activity that no longer waits; dropped",
			"command_id", reply.CommandID, "command_type", reply.CommandType,
			"workflow_id", ref.WorkflowID, "activity_id", ref.ActivityID, "error", err)
		return nil
	case temporalerr.Unavailable(err):
		// Temporal is away (restarting, the connection cut): the reply
		// is the activity's only way to complete, so it waits in the
		// delay queues, never acked nor dead-lettered, until Temporal
		// takes it.
		return amqp.Unavailable(fmt.Errorf("complete activity %s of %s with reply to %s: %w", ref.ActivityID, ref.WorkflowID, reply.CommandID, err))
	default:
		return fmt.Errorf("complete activity %s of %s with reply to %s: %w", ref.ActivityID, ref.WorkflowID, reply.CommandID, err)
	}
}

var _ amqp.Handler = (*Activities)(nil).HandleReply

// replyOutcome is what a command's activity ends with on reply: a
// CommandResult for an acceptance, RejectionError for a rejection.
func replyOutcome(reply events.Reply) (CommandResult, error) {
	if !reply.Accepted() {
		return CommandResult{}, RejectionError(reply)
	}
	return CommandResult{CommandID: reply.CommandID, CommandType: reply.CommandType, Result: reply.Result}, nil
}

// request sends a local activity's command through the requester and
// waits for the service's reply, which comes back to this process: a local
// activity runs inside its workflow task, and no other worker could
// complete it. No reply within the attempt's time (the requester's queue
// went with a broker node, the service is down) fails the attempt, and the
// next one resends the same command id, which the service answers once.
// The result names the step and carries the command, because the history
// does not record a local activity's input and the audit trail shows them.
func (a *Activities) request(ctx context.Context, queue string, msg amqp.Message, step string, input any) (CommandResult, error) {
	if a.requester == nil {
		return CommandResult{}, fmt.Errorf("%s %s: this worker has no requester to wait for replies of local activities", msg.Type, msg.ID)
	}
	d, err := a.requester.Request(ctx, queue, msg)
	if err != nil {
		return CommandResult{}, err
	}
	_, reply, err := events.DecodeAs[events.Reply](d.Body)
	if err != nil {
		// The service's stored reply to a resend may decode; a failure of
		// this attempt is retried.
		return CommandResult{}, fmt.Errorf("decode reply %s to %s %s: %w", d.ID, msg.Type, msg.ID, err)
	}
	res, err := replyOutcome(reply)
	if err != nil {
		return CommandResult{}, err
	}
	res.Step = step
	if res.Input, err = json.Marshal(input); err != nil {
		return CommandResult{}, nonRetryable(fmt.Errorf("encode the input of %s %s: %w", msg.Type, msg.ID, err), ErrTypeInvalidCommand)
	}
	activity.GetLogger(ctx).Debug("Command answered", "Type", msg.Type, "CommandID", msg.ID, "Queue", queue)
	return res, nil
}
