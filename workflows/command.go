package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Local command budget: an attempt of a command step run as a local
// activity waits CommandTimeout for the reply, as a regular attempt does,
// and the attempts together localCommandBudget, after which the step goes
// on as a regular activity.
const localCommandBudget = 30 * time.Second

// localCommandRetry retries a command step run as a local activity, never
// retrying the step's rejection types. Its backoff stays below the
// workflow task timeout, as localPublishRetry's does, so its attempts cost
// no history.
func localCommandRetry(step *temporal.RetryPolicy) *temporal.RetryPolicy {
	return retryPolicy(4*time.Second, 0, step.NonRetryableErrorTypes)
}

// commandLocally runs a forward command step (the transfer's withdraw and
// deposit, the order's commit) as a local activity: the worker sends the command and waits for
// the reply itself, inside the workflow task that decided the step, so the
// step costs neither an activity task nor a workflow task of its own. The
// command id derives from the workflow id and the step, so every attempt,
// local or regular, is answered once by the service.
//
// A step that has not been answered within the local budget (the broker or
// the service away) goes on as the regular activity regular schedules,
// retried by the server until the saga's deadline without the history
// growing; one whose deadline passed meanwhile ends with its last failure,
// which the caller turns into a *DeadlineError (givenUp), as it does the
// regular activity's. A rejection or a cancellation ends it at once. The
// returned future is ready with the step's outcome.
func commandLocally(ctx workflow.Context, deadline time.Time, step string, retry *temporal.RetryPolicy, activity, cmd any,
	regular func(workflow.Context) workflow.Future) workflow.Future {
	f, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		budget := min(max(deadline.Sub(workflow.Now(ctx)), CommandTimeout), localCommandBudget)
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout:    CommandTimeout,
			ScheduleToCloseTimeout: budget,
			RetryPolicy:            localCommandRetry(retry),
			Summary:                step,
		})
		err := workflow.ExecuteLocalActivity(lctx, activity, cmd).Get(ctx, nil)
		if err != nil && !temporal.IsCanceledError(err) && !IsRejection(err) && workflow.Now(ctx).Before(deadline) {
			err = regular(ctx).Get(ctx, nil)
		}
		set.Set(nil, err)
	})
	return f
}
