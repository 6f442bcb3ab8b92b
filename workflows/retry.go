package workflows

import (
	"errors"
	"fmt"
	"math"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/activities"
	"github.com/sagaflow/sagaflow/contract"
)

// retryPolicy is the retry policy of a saga step: exponential backoff from
// one second, doubling up to maxInterval, for at most attempts attempts (0:
// until the step succeeds), never retrying the nonRetryable error types.
// Each call returns a policy of its own, so no step can change another's.
func retryPolicy(maxInterval time.Duration, attempts int32, nonRetryable []string) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        maxInterval,
		MaximumAttempts:        attempts,
		NonRetryableErrorTypes: nonRetryable,
	}
}

// The steps' retry policies. Business rejections are never retried: the
// participant decided, and asking again gets the same answer. Every attempt
// of a command step resends the same command id, so a retry never applies
// a command twice.
//
// The forward steps (withdraw, deposit, reserve, commit) retry without a
// limit on attempts: a failure of the infrastructure (the broker or a
// service down, no reply within CommandTimeout) is not the business's
// answer, so the step waits it out until the saga's deadline
// (deadlineOptions), and only a rejection or the deadline compensates.

// untilDeadline is the attempts of a forward step: as many as the deadline
// leaves room for. It is the largest count rather than 0 (unlimited),
// which means the same to the server, because the SDK's test environment
// turns 0 into 10 attempts, and the workflow tests must run an outage as
// long as the server would.
const untilDeadline = math.MaxInt32

// withdrawRetry retries a withdraw whose reply did not come (the ledger or
// the broker is down) until the transfer's deadline.
func withdrawRetry() *temporal.RetryPolicy {
	return retryPolicy(30*time.Second, untilDeadline, activities.LedgerRejectionTypes())
}

// depositRetry retries a deposit until the transfer's deadline, with a
// longer backoff than withdrawRetry: the money is already withdrawn, and a
// deposit waits for the ledger rather than for the payer.
func depositRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, untilDeadline, activities.LedgerRejectionTypes())
}

// compensationRetry retries refunds and reversals long, because a failed
// compensation needs an operator.
func compensationRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, 10, activities.LedgerRejectionTypes())
}

// reserveRetry retries a reserve whose reply did not come until the
// reservation's deadline.
func reserveRetry() *temporal.RetryPolicy {
	return retryPolicy(30*time.Second, untilDeadline, activities.InventoryRejectionTypes())
}

// commitRetry retries a commit until the reservation's deadline, with a
// longer backoff than reserveRetry: the order is paid, and giving up on
// the commit costs the whole order (a refund and a release).
func commitRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, untilDeadline, activities.InventoryRejectionTypes())
}

// releaseRetry retries releases long, because stock left held needs an
// operator.
func releaseRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, 10, activities.InventoryRejectionTypes())
}

// publishRetry retries publishing an outcome event until the broker takes
// it, without a limit on attempts: the saga's effects are done, and giving
// up would fail the workflow after the money or the stock moved (a parent
// order would then take its payment for not made). The deterministic event
// id lets consumers drop duplicates. Only the activity's own non-retryable
// errors (a malformed event) stop it.
func publishRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, 0, nil)
}

// localPublishRetry retries an outcome publish run as a local activity.
// Its backoff stays below the workflow task timeout (10 s by default): a
// longer one would make the SDK end the workflow task and retry on a
// server timer, adding a marker, a timer and a workflow task to the
// history per attempt. Its attempts are bounded by the local activity's
// schedule-to-close budget, after which the publish goes to a regular
// activity with publishRetry, so a long outage costs no history.
func localPublishRetry() *temporal.RetryPolicy {
	return retryPolicy(4*time.Second, 0, nil)
}

// CommandTimeout is how long a step waits for the service's reply before the
// attempt times out and is retried with the same command id.
const CommandTimeout = 10 * time.Second

// deadlineOptions are the activity options of a forward command step of a
// saga with the given deadline: each attempt waits CommandTimeout for the
// reply, and the attempts together last until the deadline
// (ScheduleToCloseTimeout); the caller turns the failure that ends them
// into a *DeadlineError with givenUp. A step that
// starts less than CommandTimeout before the deadline, or after it, still
// gets one attempt. The summary says until when the step retries, so the
// Web UI and the audit trail show it beside the attempts.
//
// Only options change with the deadline, never the commands the workflow
// issues, so histories recorded before it replay unchanged.
func deadlineOptions(ctx workflow.Context, deadline time.Time, step string, retry *temporal.RetryPolicy) workflow.Context {
	budget := max(deadline.Sub(workflow.Now(ctx)), CommandTimeout)
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    CommandTimeout,
		ScheduleToCloseTimeout: budget,
		RetryPolicy:            retry,
		Summary:                step + ": retried until " + deadline.UTC().Format(time.RFC3339),
	})
}

// DeadlineError is a forward step that was still failing for a reason of
// the infrastructure when its saga's deadline passed: Temporal stopped
// retrying it because the next attempt would start after the deadline, or
// the deadline passed during an attempt. Err is the step's last failure.
type DeadlineError struct {
	Step     string
	Deadline time.Time
	Err      error
}

// Error says which step gave up at which deadline, and why it was failing.
func (e *DeadlineError) Error() string {
	return fmt.Sprintf("%s retried until the deadline %s passed, still failing: %v", e.Step, e.Deadline.UTC().Format(time.RFC3339), e.Err)
}

// Unwrap returns the step's last failure.
func (e *DeadlineError) Unwrap() error { return e.Err }

// DeadlinePassed reports whether err is, or wraps, a *DeadlineError.
func DeadlinePassed(err error) bool {
	var de *DeadlineError
	return errors.As(err, &de)
}

// givenUp turns the failure of a forward step run with deadlineOptions
// into a *DeadlineError when it is not the participant's answer or a
// cancellation: with attempts bounded only by the deadline, Temporal stops
// retrying such a step for no other reason.
func givenUp(err error, step string, deadline time.Time) error {
	if err == nil || IsRejection(err) || temporal.IsCanceledError(err) {
		return err
	}
	return &DeadlineError{Step: step, Deadline: deadline, Err: err}
}

// sagaDeadline is the deadline of the running saga: the input's, or the
// saga type's default def counted from the workflow's start, which every
// replay reads the same from the history.
func sagaDeadline(ctx workflow.Context, deadline time.Time, def time.Duration) time.Time {
	return contract.DeadlineOf(deadline, workflow.GetInfo(ctx).WorkflowStartTime, def)
}
