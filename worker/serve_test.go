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
	"github.com/sagaflow/sagaflow/services/inventory"
	"github.com/sagaflow/sagaflow/services/ledger"
	"github.com/sagaflow/sagaflow/services/orders"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
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
	require.Len(t, p.closers, 2, "the workflows part opened one publisher and one requester")

	_, err = p.replies(ctx)
	require.NoError(t, err)
	require.Same(t, first, p.acts, "the replies part uses the workflows part's activities")
	require.Len(t, p.closers, 2, "and opened no second publisher")
}

type migrator interface{ Migrate(context.Context) error }

// TestServiceMigrationEndsWithItsContext: the worker migrates each service's
// schema under its start context. A cancelled start, or a migration stuck
// behind another writer, fails naming the service and the context's error
// instead of hanging; once the writer is gone the migration applies.
func TestServiceMigrationEndsWithItsContext(t *testing.T) {
	services := []struct {
		name  string
		build func(db *store.DB) (migrator, error)
	}{
		{ledger.ServiceName, func(db *store.DB) (migrator, error) { return ledger.New(db, ledger.Config{}) }},
		{inventory.ServiceName, func(db *store.DB) (migrator, error) { return inventory.New(db, inventory.Config{}) }},
		{orders.ServiceName, func(db *store.DB) (migrator, error) { return orders.New(db, orders.Config{}) }},
	}
	for _, svc := range services {
		t.Run(svc.name, func(t *testing.T) {
			db := storetest.Open(t, store.SQLite)
			m, err := svc.build(db)
			require.NoError(t, err)
			applied := func() []int {
				v, err := db.AppliedVersions(context.Background(), svc.name)
				require.NoError(t, err)
				return v
			}
			require.Empty(t, applied(), "building a service does not migrate it")

			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			err = migrate(cancelled, m)
			require.ErrorIs(t, err, context.Canceled)
			require.ErrorContains(t, err, svc.name+": store: migrate "+svc.name)

			// SQLite has one writer: a transaction that never ends holds
			// the migration at its first step until its context gives up.
			locked, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				held <- db.InTx(context.Background(), func(*store.Tx) error { close(locked); <-release; return nil })
			}()
			<-locked
			stuck, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, migrate(stuck, m), context.DeadlineExceeded)
			close(release)
			require.NoError(t, <-held)
			require.Empty(t, applied())

			require.NoError(t, migrate(context.Background(), m))
			require.NotEmpty(t, applied(), "every step applied")
		})
	}
}
