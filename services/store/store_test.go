package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

func TestRebind(t *testing.T) {
	ctx := context.Background()
	lite, err := store.Open(ctx, t.TempDir()+"/r.db")
	require.NoError(t, err)
	defer lite.Close()
	tests := []struct {
		name, in, sqlite string
	}{
		{"no placeholders", "SELECT 1", "SELECT 1"},
		{"several", "a = ? AND b = ?", "a = ? AND b = ?"},
		{"quoted question mark", "a = '?' AND b = ?", "a = '?' AND b = ?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.sqlite, lite.Rebind(tt.in))
		})
	}
	pg := storetest.Open(t, store.Postgres)
	require.Equal(t, "a = $1 AND b = $2", pg.Rebind("a = ? AND b = ?"))
	require.Equal(t, "a = '?' AND b = $1", pg.Rebind("a = '?' AND b = ?"))
}

func TestMigrateIsIdempotent(t *testing.T) {
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			dsn := storetest.DSN(t, engine)
			migs := []store.Migration{
				{Version: 2, Name: "second", Statements: []string{"ALTER TABLE widgets ADD COLUMN colour TEXT"}},
				{Version: 1, Name: "first", Statements: []string{"CREATE TABLE widgets (id TEXT PRIMARY KEY)"}},
			}
			// Several processes starting at once: every one must succeed and
			// every step must run once (a second ALTER TABLE would fail).
			const starters = 4
			var wg sync.WaitGroup
			errs := make([]error, starters)
			for i := range starters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					db, err := store.Open(ctx, dsn)
					if err != nil {
						errs[i] = err
						return
					}
					defer db.Close()
					errs[i] = db.Migrate(ctx, "widgets", migs)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			db, err := store.Open(ctx, dsn)
			require.NoError(t, err)
			defer db.Close()
			require.NoError(t, db.Migrate(ctx, "widgets", migs), "running again is a no-op")
			versions, err := db.AppliedVersions(ctx, "widgets")
			require.NoError(t, err)
			require.Equal(t, []int{1, 2}, versions)
			versions, err = db.AppliedVersions(ctx, "store")
			require.NoError(t, err)
			require.Equal(t, []int{1, 2, 3}, versions, "the store's own: inbox and outbox, the outbox's trace context, the retention indexes")
			_, err = db.Exec(ctx, "INSERT INTO widgets (id, colour) VALUES (?, ?)", "w1", "red")
			require.NoError(t, err)
		})
	}
}

func TestInbox(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		claim := func(id string) (bool, []byte) {
			var (
				claimed bool
				reply   []byte
			)
			require.NoError(t, db.InTx(ctx, func(tx *store.Tx) error {
				var err error
				claimed, reply, err = tx.ClaimCommand(ctx, "svc", id, "x.do")
				if err != nil || !claimed {
					return err
				}
				return tx.StoreReply(ctx, "svc", id, []byte(`{"n":"`+id+`"}`))
			}))
			return claimed, reply
		}
		claimed, reply := claim("c1")
		require.True(t, claimed)
		require.Nil(t, reply)
		for range 2 {
			claimed, reply = claim("c1")
			require.False(t, claimed)
			require.JSONEq(t, `{"n":"c1"}`, string(reply))
		}
		claimed, _ = claim("c2")
		require.True(t, claimed, "another id is new")

		// A rolled-back claim leaves no trace.
		err := db.InTx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.ClaimCommand(ctx, "svc", "c3", "x.do")
			require.NoError(t, err)
			return errors.New("boom")
		})
		require.Error(t, err)
		_, found, err := db.InboxReply(ctx, "svc", "c3")
		require.NoError(t, err)
		require.False(t, found)
	})
}

func TestIsUniqueViolation(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.Exec(ctx, "INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ('x', 1, 'x', 0)")
		require.NoError(t, err)
		_, err = db.Exec(ctx, "INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ('x', 1, 'x', 0)")
		require.Error(t, err)
		require.True(t, store.IsUniqueViolation(err))
		require.False(t, store.IsUniqueViolation(errors.New("other")))
	})
}

var errConnectionLost = errors.New("connection lost")

// recordingPublisher records what it published; fail decides per message.
type recordingPublisher struct {
	mu        sync.Mutex
	published []store.OutboxMessage
	fail      func(m store.OutboxMessage) error
	hold      chan struct{} // when set, PublishBatch waits on it
	entered   chan struct{} // when set, PublishBatch signals it before waiting
	// opaque makes PublishBatch's error a plain one that does not say which
	// message failed, as a publisher without *store.BatchError reports.
	opaque bool
	// singles counts the messages published one by one, outside a batch.
	singles int
}

func (p *recordingPublisher) Publish(ctx context.Context, m store.OutboxMessage) error {
	p.mu.Lock()
	p.singles++
	p.mu.Unlock()
	return p.publish(ctx, m)
}

func (p *recordingPublisher) publish(_ context.Context, m store.OutboxMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		if err := p.fail(m); err != nil {
			return err
		}
	}
	p.published = append(p.published, m)
	return nil
}

func (p *recordingPublisher) PublishBatch(ctx context.Context, ms []store.OutboxMessage) error {
	if p.entered != nil {
		select {
		case p.entered <- struct{}{}:
		default:
		}
	}
	if p.hold != nil {
		<-p.hold
	}
	errs := make([]error, len(ms))
	failed := false
	for i, m := range ms {
		if errs[i] = p.publish(ctx, m); errs[i] != nil {
			failed = true
		}
	}
	switch {
	case !failed:
		return nil
	case p.opaque:
		return errors.Join(errs...)
	}
	return &store.BatchError{Errs: errs}
}

func (p *recordingPublisher) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, len(p.published))
	for i, m := range p.published {
		out[i] = m.ID
	}
	return out
}

func enqueue(t *testing.T, db *store.DB, producer string, ids ...string) {
	t.Helper()
	require.NoError(t, db.InTx(context.Background(), func(tx *store.Tx) error {
		for _, id := range ids {
			if err := tx.Enqueue(context.Background(), producer, store.OutboxMessage{
				Exchange: "sagas.events", RoutingKey: "thing.happened", ID: id, Type: "thing.happened",
				CorrelationID: "corr", Body: []byte(`{"id":"` + id + `"}`),
			}); err != nil {
				return err
			}
		}
		return nil
	}))
}

func TestRelayPublishesInOrderAndMarksSent(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{}
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc", BatchSize: 2})
		require.NoError(t, err)
		enqueue(t, db, "svc", "m1", "m2", "m3")
		enqueue(t, db, "other", "o1")
		n, err := relay.Flush(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		require.Equal(t, []string{"m1", "m2", "m3"}, pub.ids(), "only this producer's rows, in creation order")
		pending, err := db.PendingCount(ctx, "svc")
		require.NoError(t, err)
		require.Zero(t, pending)
		rows, err := db.Outbox(ctx, "svc")
		require.NoError(t, err)
		require.Len(t, rows, 3)
		require.False(t, rows[0].SentAt.IsZero())
		require.Equal(t, `{"id":"m1"}`, string(rows[0].Message.Body))
		n, err = relay.Flush(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "sent rows are not published again")
	})
}

func TestRelayIsWokenByCommit(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		published := make(chan string, 10)
		pub := &recordingPublisher{fail: func(m store.OutboxMessage) error { published <- m.ID; return nil }}
		// A sweep interval far beyond the test's deadline: only the wake
		// signal can get the row out in time.
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc", SweepInterval: time.Hour})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- relay.Run(ctx) }()
		enqueue(t, db, "svc", "w1")
		select {
		case id := <-published:
			require.Equal(t, "w1", id)
		case <-time.After(20 * time.Second):
			t.Fatal("relay was not woken by the commit")
		}
		cancel()
		require.NoError(t, <-done)
	})
}

// TestRelayWaitingForTheBrokerBlocksNoWriter: while the relay waits for
// confirms (a broker that is away or slow), the service's transactions go on
// committing and the outbox grows; once the broker answers, every row goes
// out once, in creation order. On SQLite a relay that published inside its
// marking transaction would hold the database's only write lock meanwhile,
// and the writes below would time out.
func TestRelayWaitingForTheBrokerBlocksNoWriter(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{hold: make(chan struct{}), entered: make(chan struct{}, 1)}
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc"})
		require.NoError(t, err)
		enqueue(t, db, "svc", "m1", "m2")
		flushed := make(chan error, 1)
		go func() {
			_, err := relay.Flush(ctx)
			flushed <- err
		}()
		select {
		case <-pub.entered:
		case <-time.After(20 * time.Second):
			t.Fatal("the relay never started publishing")
		}

		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var later []string
		for i := range 20 {
			id := fmt.Sprintf("n%02d", i)
			require.NoError(t, db.InTx(wctx, func(tx *store.Tx) error {
				return tx.Enqueue(wctx, "svc", store.OutboxMessage{
					Exchange: "sagas.events", RoutingKey: "thing.happened", ID: id, Type: "thing.happened",
					CorrelationID: "corr", Body: []byte(`{}`),
				})
			}), "a write while the relay waits for the broker")
			later = append(later, id)
		}
		pending, err := db.PendingCount(ctx, "svc")
		require.NoError(t, err)
		require.Equal(t, 22, pending, "the outbox grew while the relay waited")
		require.Empty(t, pub.ids(), "sanity: nothing was confirmed yet")

		close(pub.hold)
		require.NoError(t, <-flushed)
		_, err = relay.Flush(ctx)
		require.NoError(t, err)
		require.Equal(t, append([]string{"m1", "m2"}, later...), pub.ids(), "every row once, in creation order")
		pending, err = db.PendingCount(ctx, "svc")
		require.NoError(t, err)
		require.Zero(t, pending)
	})
}

func TestRelayCrashBetweenPublishAndMarkRepublishesSameID(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{}
		crashes := 1
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc",
			AfterPublish: func(context.Context, []store.OutboxMessage) error {
				if crashes > 0 {
					crashes--
					return errors.New("crash")
				}
				return nil
			}})
		require.NoError(t, err)
		enqueue(t, db, "svc", "m1")
		_, err = relay.Flush(ctx)
		require.Error(t, err)
		pending, err := db.PendingCount(ctx, "svc")
		require.NoError(t, err)
		require.Equal(t, 1, pending, "the crash left the row unmarked")
		_, err = relay.Flush(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"m1", "m1"}, pub.ids(), "published again under the same message id")
	})
}

// A batch that says which row was unroutable has its other rows published
// once: the relay sends nothing one by one.
func TestRelayBatchWithAnUnroutableRowSendsTheOthersOnce(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{fail: func(m store.OutboxMessage) error {
			if m.ID == "lost" {
				return fmt.Errorf("returned by the broker: %w", store.ErrUnroutable)
			}
			return nil
		}}
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc"})
		require.NoError(t, err)
		enqueue(t, db, "svc", "m1", "lost", "m3")
		_, err = relay.Flush(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"m1", "m3"}, pub.ids())
		require.Zero(t, pub.singles)
		rows, err := db.Outbox(ctx, "svc")
		require.NoError(t, err)
		require.Equal(t, "unroutable", rows[1].LastError)
		pending, err := db.PendingCount(ctx, "svc")
		require.NoError(t, err)
		require.Zero(t, pending)
		require.EqualValues(t, 1, relay.Stats().Unroutable.Load())
	})
}

func TestRelaySkipsUnroutableAndStopsAtFailure(t *testing.T) {
	for _, opaque := range []bool{false, true} {
		t.Run(fmt.Sprintf("opaque batch error %v", opaque), func(t *testing.T) {
			testRelaySkipsUnroutableAndStopsAtFailure(t, opaque)
		})
	}
}

func testRelaySkipsUnroutableAndStopsAtFailure(t *testing.T, opaque bool) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		down := true
		pub := &recordingPublisher{opaque: opaque, fail: func(m store.OutboxMessage) error {
			switch {
			case m.ID == "lost":
				return fmt.Errorf("returned by the broker: %w", store.ErrUnroutable)
			case m.ID == "m3" && down:
				return errConnectionLost
			}
			return nil
		}}
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc"})
		require.NoError(t, err)
		enqueue(t, db, "svc", "m1", "lost", "m3", "m4")
		_, err = relay.Flush(ctx)
		require.ErrorIs(t, err, errConnectionLost)
		rows, err := db.Outbox(ctx, "svc")
		require.NoError(t, err)
		require.False(t, rows[0].SentAt.IsZero())
		require.Equal(t, "unroutable", rows[1].LastError)
		require.True(t, rows[2].SentAt.IsZero(), "the failed row stays pending")
		require.True(t, rows[3].SentAt.IsZero(), "rows after it wait, keeping the order")
		down = false
		_, err = relay.Flush(ctx)
		require.NoError(t, err)
		pending, err := db.PendingCount(ctx, "svc")
		require.NoError(t, err)
		require.Zero(t, pending)
		require.EqualValues(t, 1, relay.Stats().Unroutable.Load())
	})
}

func TestRelaysOnOnePostgresDoNotPublishARowTwice(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t, store.Postgres)
	var ids []string
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("m%02d", i))
	}
	db1, err := store.Open(ctx, dsn)
	require.NoError(t, err)
	defer db1.Close()
	db2, err := store.Open(ctx, dsn)
	require.NoError(t, err)
	defer db2.Close()
	enqueue(t, db1, "svc", ids...)

	hold := make(chan struct{})
	pub1 := &recordingPublisher{hold: hold}
	pub2 := &recordingPublisher{hold: hold}
	r1, err := store.NewRelay(db1, pub1, store.RelayConfig{Producer: "svc", BatchSize: 10})
	require.NoError(t, err)
	r2, err := store.NewRelay(db2, pub2, store.RelayConfig{Producer: "svc", BatchSize: 10})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for _, r := range []*store.Relay{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Flush(ctx)
			require.NoError(t, err)
		}()
	}
	close(hold)
	wg.Wait()
	all := append(pub1.ids(), pub2.ids()...)
	require.ElementsMatch(t, ids, all, "every row published exactly once across both relays")
}

// The outbox row keeps the trace context of the transaction that wrote it,
// and the relay hands it to the publisher; a row written without one has
// none.
func TestOutboxKeepsTheTraceContextOfItsTransaction(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tc := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=x"}
		require.NoError(t, db.InTx(ctx, func(tx *store.Tx) error {
			return tx.Enqueue(ctx, "svc",
				store.OutboxMessage{Exchange: "sagas.events", RoutingKey: "a", ID: "traced", Type: "a", Body: []byte(`{}`), TraceContext: tc},
				store.OutboxMessage{Exchange: "sagas.events", RoutingKey: "a", ID: "untraced", Type: "a", Body: []byte(`{}`)})
		}))
		rows, err := db.Outbox(ctx, "svc")
		require.NoError(t, err)
		require.Equal(t, tc, rows[0].Message.TraceContext)
		require.Nil(t, rows[1].Message.TraceContext)
		pub := &recordingPublisher{}
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc"})
		require.NoError(t, err)
		_, err = relay.Flush(ctx)
		require.NoError(t, err)
		require.Len(t, pub.published, 2)
		require.Equal(t, tc, pub.published[0].TraceContext)
		require.Nil(t, pub.published[1].TraceContext)
	})
}

// Rows older than their retention go, newer ones stay: the inbox's of the
// relay's producer (not another consumer's), the outbox's sent rows (never a
// pending one, however old).
func TestRelaySweepPrunesRowsOlderThanTheirRetention(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		claim := func(consumer, id string) {
			require.NoError(t, db.InTx(ctx, func(tx *store.Tx) error {
				_, _, err := tx.ClaimCommand(ctx, consumer, id, "x.do")
				return err
			}))
		}
		claim("svc", "c-old")
		claim("svc", "c-new")
		claim("other", "c-other-old")
		enqueue(t, db, "svc", "m-old", "m-new")
		pub := &recordingPublisher{}
		relay, err := store.NewRelay(db, pub, store.RelayConfig{Producer: "svc", Retention: time.Hour, InboxRetention: 2 * time.Hour, SweepInterval: 20 * time.Millisecond})
		require.NoError(t, err)
		_, err = relay.Flush(ctx)
		require.NoError(t, err)
		enqueue(t, db, "svc", "m-pending-old")

		// Age the "old" rows past their retention, the "new" ones not.
		longAgo := time.Now().Add(-3 * time.Hour).UnixMicro()
		recently := time.Now().Add(-30 * time.Minute).UnixMicro()
		_, err = db.Exec(ctx, "UPDATE inbox SET received_at = ? WHERE command_id IN ('c-old', 'c-other-old')", longAgo)
		require.NoError(t, err)
		_, err = db.Exec(ctx, "UPDATE inbox SET received_at = ? WHERE command_id = 'c-new'", time.Now().Add(-90*time.Minute).UnixMicro())
		require.NoError(t, err)
		_, err = db.Exec(ctx, "UPDATE outbox SET sent_at = ? WHERE message_id = 'm-old'", longAgo)
		require.NoError(t, err)
		_, err = db.Exec(ctx, "UPDATE outbox SET sent_at = ? WHERE message_id = 'm-new'", recently)
		require.NoError(t, err)
		_, err = db.Exec(ctx, "UPDATE outbox SET created_at = ? WHERE message_id = 'm-pending-old'", longAgo)
		require.NoError(t, err)
		require.Equal(t, []string{"c-new", "c-old", "c-other-old"}, inboxIDs(t, db))

		// The sweep of a running relay prunes without being asked.
		done := make(chan error, 1)
		go func() { done <- relay.Run(ctx) }()
		require.Eventually(t, func() bool { return len(inboxIDs(t, db)) == 2 }, 30*time.Second, 20*time.Millisecond)
		require.Equal(t, []string{"c-new", "c-other-old"}, inboxIDs(t, db), "the producer's old command id went; another consumer's is not the relay's")
		require.Eventually(t, func() bool { return len(outboxIDs(t, db)) == 2 }, 30*time.Second, 20*time.Millisecond)
		require.Equal(t, []string{"m-new", "m-pending-old"}, outboxIDs(t, db), "the old sent row went; a pending one is never pruned")
		cancel()
		require.NoError(t, <-done)
	})
}

func TestRelayWithNegativeRetentionKeepsEveryRow(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		require.NoError(t, db.InTx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.ClaimCommand(ctx, "svc", "c-old", "x.do")
			return err
		}))
		enqueue(t, db, "svc", "m-old")
		relay, err := store.NewRelay(db, &recordingPublisher{}, store.RelayConfig{Producer: "svc", Retention: -1, InboxRetention: -1})
		require.NoError(t, err)
		_, err = relay.Flush(ctx)
		require.NoError(t, err)
		longAgo := time.Now().Add(-365 * 24 * time.Hour).UnixMicro()
		_, err = db.Exec(ctx, "UPDATE inbox SET received_at = ?", longAgo)
		require.NoError(t, err)
		_, err = db.Exec(ctx, "UPDATE outbox SET sent_at = ?", longAgo)
		require.NoError(t, err)
		require.NoError(t, relay.Prune(ctx))
		require.Equal(t, []string{"c-old"}, inboxIDs(t, db))
		require.Equal(t, []string{"m-old"}, outboxIDs(t, db))
	})
}

func inboxIDs(t *testing.T, db *store.DB) []string {
	t.Helper()
	return column(t, db, "SELECT command_id FROM inbox ORDER BY command_id")
}

func outboxIDs(t *testing.T, db *store.DB) []string {
	t.Helper()
	return column(t, db, "SELECT message_id FROM outbox ORDER BY message_id")
}

func column(t *testing.T, db *store.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), query)
	require.NoError(t, err)
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var refused error
	db, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err == nil {
		_, refused = db.Exec(ctx, "SELECT 1")
		_ = db.Close()
	} else {
		refused = err
	}
	require.Error(t, refused)
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nothing", nil, false},
		{"connection refused", refused, true},
		{"server shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure", fmt.Errorf("begin: %w", &pgconn.PgError{Code: "08006"}), true},
		{"a unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"an error of the handler", errors.New("no such account"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, store.IsUnavailable(tt.err), "%v", tt.err)
		})
	}
}
