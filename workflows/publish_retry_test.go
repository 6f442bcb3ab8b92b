package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A saga publishes its outcome after its effects are done: giving up on a
// broker outage, however long, would fail the workflow after the money or
// the stock moved, and a parent order would then be cancelled without its
// payment refunded. So the publish retries without a limit on attempts. (The
// test environment caps unlimited attempts at 10, so the policy itself is
// the specification here.)
func TestPublishRetryNeverGivesUp(t *testing.T) {
	require.Zero(t, publishRetry().MaximumAttempts, "unlimited attempts")
	require.Empty(t, publishRetry().NonRetryableErrorTypes, "only the activity's own non-retryable errors (a malformed event) stop it")
	require.Positive(t, publishRetry().MaximumInterval, "backs off, so an outage costs little")
}
