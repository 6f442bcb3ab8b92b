package ledger

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/services/command/commandtest"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// relayCutProxyPort is the port of the proxy between the ledger and the
// broker in TestRelayCutFromTheBrokerKeepsServingAndPublishesOnceInOrder.
const relayCutProxyPort = 27620

// TestRelayCutFromTheBrokerKeepsServingAndPublishesOnceInOrder cuts the
// ledger's broker connection (its consumer's and its relay's) at a TCP
// proxy: the service goes on applying commands handed to it in process,
// each in its own short transaction, while its outbox grows; once the
// connection heals every pending row is published, once and in the order
// the service wrote them.
func TestRelayCutFromTheBrokerKeepsServingAndPublishesOnceInOrder(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	u, err := url.Parse(testenv.AMQPURL(t))
	require.NoError(t, err)
	broker := u.Host
	if u.Port() == "" {
		broker = net.JoinHostPort(u.Hostname(), "5672")
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(srv, "ledger-broker", fmt.Sprintf("127.0.0.1:%d", relayCutProxyPort), broker)
	require.NoError(t, proxy.Start())
	t.Cleanup(proxy.Stop)
	u.Host = proxy.Listen
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, amqp.Config{URL: u.String(), ConnectionName: t.Name(), Heartbeat: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	prefix := fmt.Sprintf("cut-%d-", time.Now().UnixNano())
	// The subscriber is on a direct connection of its own, one delivery
	// at a time, so it sees the order the broker got them in.
	dedup, published := subscribe(t, prefix, "funds.*")
	s := newService(t, db, Config{Queue: commandtest.Queue(t, "ledger.commands")})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx, conn) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})
	replies := replyQueue(t)
	deliver := func(env events.Envelope) {
		d := commandtest.Delivery(t, env)
		// As a saga's command: its reply goes to a queue that exists.
		d.ReplyTo = replies
		require.NoError(t, s.proc.Deliver(context.Background(), d))
		body, found, err := s.db.InboxReply(context.Background(), ServiceName, env.ID)
		require.NoError(t, err)
		require.True(t, found, "no stored reply for %s", env.ID)
		_, r, err := events.DecodeAs[events.Reply](body)
		require.NoError(t, err)
		require.Equal(t, events.ReplyAccepted, r.Status, "%s: %s %s", env.Type, r.Reason, r.Message)
	}
	deposit := func(acct string, n int64) {
		deliver(commandtest.Envelope(t, events.CmdLedgerDeposit, events.LedgerDeposit{AccountID: acct, Amount: eur(n)}))
	}
	const accounts, perAccount = 3, 10
	for i := range accounts {
		deliver(commandtest.Envelope(t, events.CmdLedgerOpen, events.LedgerOpen{AccountID: fmt.Sprintf("%s%d", prefix, i), Currency: "EUR"}))
		deposit(fmt.Sprintf("%s%d", prefix, i), 1)
	}
	eventually(t, 30*time.Second, func() bool { return len(published()) == accounts && pending(t, db, anyRow) == 0 }, "the first deposits are published before the cut")

	proxy.Stop() // every connection through it closed, none accepted
	eventually(t, 30*time.Second, func() bool { return !conn.Connected() }, "the ledger sees its broker connection cut")
	for n := range perAccount {
		for i := range accounts {
			deposit(fmt.Sprintf("%s%d", prefix, i), int64(n+2))
		}
	}
	require.Equal(t, accounts*perAccount, pending(t, db, eventRow), "the outbox holds every event written during the cut")
	require.Len(t, published(), accounts, "nothing published during the cut")

	require.NoError(t, proxy.Start())
	eventually(t, 60*time.Second, func() bool { return pending(t, db, anyRow) == 0 }, "the relay drains the outbox once the connection heals")
	want := sentEventIDs(t, db, prefix)
	eventually(t, 30*time.Second, func() bool { return len(published()) >= len(want) }, "every event reaches the subscriber")
	var got []string
	for _, env := range published() {
		got = append(got, env.ID)
		require.Zero(t, dedup.duplicates(env.ID), "event %s published more than once", env.ID)
	}
	require.Equal(t, want, got, "each event once, in the order the ledger wrote it")
}

// replyQueue is a queue of the test's own that takes the ledger's replies,
// consumed (and dropped) on a direct connection.
func replyQueue(t *testing.T) string {
	conn := commandtest.Dial(t)
	q := commandtest.Queue(t, "ledger.test.replies")
	cs, err := conn.NewConsumer(amqp.ConsumerConfig{Name: q, Exchange: "", Dedup: amqp.NoDedup{}}, func(context.Context, amqp.Delivery) error { return nil })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually(t, 30*time.Second, cs.Consuming, "the reply queue's consumer is consuming")
	return q
}

// pending counts the ledger's outbox rows not yet sent that match keep.
func pending(t *testing.T, db *store.DB, keep func(store.OutboxRow) bool) int {
	rows, err := db.Outbox(context.Background(), ServiceName)
	require.NoError(t, err)
	n := 0
	for _, r := range rows {
		if r.SentAt.IsZero() && keep(r) {
			n++
		}
	}
	return n
}

// anyRow and eventRow are filters of pending: every row, or the rows on
// the event exchange (the replies' rows are the other ones).
func anyRow(store.OutboxRow) bool     { return true }
func eventRow(r store.OutboxRow) bool { return r.Message.Exchange == amqp.DefaultExchange }

// sentEventIDs are the ids of the funds events of the accounts with the
// prefix, in the outbox's creation order.
func sentEventIDs(t *testing.T, db *store.DB, prefix string) []string {
	_, evs := commandtest.Outbox(t, db, ServiceName)
	var ids []string
	for _, e := range evs {
		if strings.HasPrefix(e.Subject, prefix) && strings.HasPrefix(e.Type, "funds.") {
			ids = append(ids, e.ID)
		}
	}
	return ids
}
