package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/activities"
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

// withdrawRetry retries a withdraw whose reply did not come (the ledger or
// the broker is down).
func withdrawRetry() *temporal.RetryPolicy {
	return retryPolicy(30*time.Second, 5, activities.LedgerRejectionTypes())
}

// depositRetry is longer than withdrawRetry: giving up on a deposit costs a
// refund, so it is worth waiting for the ledger a little longer.
func depositRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, 8, activities.LedgerRejectionTypes())
}

// compensationRetry retries refunds and reversals long, because a failed
// compensation needs an operator.
func compensationRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, 10, activities.LedgerRejectionTypes())
}

// reserveRetry retries a reserve whose reply did not come.
func reserveRetry() *temporal.RetryPolicy {
	return retryPolicy(30*time.Second, 5, activities.InventoryRejectionTypes())
}

// commitRetry is longer than reserveRetry: giving up on a commit costs the
// whole order (a refund and a release).
func commitRetry() *temporal.RetryPolicy {
	return retryPolicy(time.Minute, 8, activities.InventoryRejectionTypes())
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
