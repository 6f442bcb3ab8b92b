package main

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/testenv"
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

// TestWorkflowsAndRepliesShareOneActivities: a worker running both parts
// builds one Activities with one publisher; the reply consumer completes the
// activities the workflows part runs.
func TestWorkflowsAndRepliesShareOneActivities(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, amqp.Config{URL: testenv.AMQPURL(t), ConnectionName: "worker test " + t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	// A lazy client never dials: building the parts needs none.
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	cfg, err := parseConfig([]string{"--run", "workflows,replies"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	p := &process{cfg: cfg, logger: slog.New(slog.DiscardHandler), conn: conn, temporal: tc, registry: prometheus.NewRegistry()}
	t.Cleanup(p.close)

	_, err = p.workflows(ctx)
	require.NoError(t, err)
	require.NotNil(t, p.acts)
	first := p.acts
	require.Len(t, p.closers, 1, "the workflows part opened one publisher")

	_, err = p.replies(ctx)
	require.NoError(t, err)
	require.Same(t, first, p.acts, "the replies part uses the workflows part's activities")
	require.Len(t, p.closers, 1, "and opened no second publisher")
}
