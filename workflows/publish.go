package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// publishLocally publishes a saga event with a local activity: a confirmed
// publish takes milliseconds, so it runs inside the current workflow task
// instead of costing an activity task and another workflow task. The local
// activity retries within its budget (localPublishOptions); a broker down
// for longer hands the publish to a regular activity, which the server
// retries as long as the outage lasts without the history growing, so the
// event is never lost. step names the saga step in the history: a local
// activity's input is not recorded, and the audit trail shows the step by
// its summary.
func publishLocally(ctx workflow.Context, step string, activity, ev any) error {
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localPublishOptions(step)), activity, ev).Get(ctx, nil)
	if err == nil || temporal.IsCanceledError(err) || IsRejection(err) {
		// Published, cancelled, or a malformed event that no retry fixes.
		return err
	}
	return publishActivity(ctx, activity, ev)
}

// publishActivity publishes a saga event with a regular activity.
func publishActivity(ctx workflow.Context, activity, ev any) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: CommandTimeout,
		RetryPolicy:         publishRetry(),
	})
	return workflow.ExecuteActivity(ctx, activity, ev).Get(ctx, nil)
}

// Local publish budget: an attempt gets localPublishAttemptTimeout, and
// the attempts together localPublishBudget, after which a regular activity
// takes over.
const (
	localPublishAttemptTimeout = 5 * time.Second
	localPublishBudget         = time.Minute
)

// localPublishOptions are the local activity options of an event publish,
// summarised by the saga step.
func localPublishOptions(step string) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout:    localPublishAttemptTimeout,
		ScheduleToCloseTimeout: localPublishBudget,
		RetryPolicy:            localPublishRetry(),
		Summary:                step,
	}
}
