package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
)

// TestReplyConsumerLetsRepeatedRepliesThrough: a service answers a resent
// command with its stored reply, whose message id is the first reply's; the
// reply consumer must hand it to HandleReply, or the activity that resent
// the command waits until it times out, on every attempt.
func TestReplyConsumerLetsRepeatedRepliesThrough(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	c := replyConsumerConfig(cfg)
	require.Equal(t, cfg.ReplyQueue, c.Name)
	require.NoError(t, c.Validate())

	dedup := c.Dedup
	if dedup == nil {
		dedup = amqp.NewMemoryDedup(0) // what the consumer defaults to
	}
	ctx := context.Background()
	const replyID = "reply-to-withdraw-42"
	for attempt := 1; attempt <= 2; attempt++ {
		res, err := dedup.Claim(ctx, replyID)
		require.NoError(t, err)
		require.Equal(t, amqp.ClaimAcquired, res, "delivery %d of reply %s", attempt, replyID)
		require.NoError(t, dedup.Complete(ctx, replyID, time.Hour))
	}
}
