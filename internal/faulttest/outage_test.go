//go:build faults

package faulttest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/rmqcluster"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/workflows"
)

// Shape of the long-outage test: every saga in flight at once while the
// broker is down, and a known share of them made to fail on purpose, the
// way `starter load --failure-rate` does (an order of an unknown sku, a
// transfer from an empty account). Everything else can succeed: the
// customers are rich and the stock is plenty, so a saga compensates only
// when it was made to fail or when a fault is taken for a business
// failure.
const (
	outageBridgeOrders = 20
	outageDirectOrders = 160
	outageTransfers    = 160
	outageFailShare    = 0.1
	// outageInFlight is how many sagas at least run when the broker comes
	// back: all but the bridge orders, whose order.placed waits for the
	// broker, can start during the outage, and none can end.
	outageInFlight = 300
	outageBalance  = 10_000_000
	outageStock    = 10_000
	emptyAccount   = "c-empty"
	// outage is how long the broker stays down: longer than a command's
	// timeout, so the activities waiting for a reply time out and are
	// retried with the same command ids, several times each.
	outage = 3 * workflows.CommandTimeout
	// outageStartBudget bounds how long the broker stays down waiting for
	// the sagas to start: on a busy machine the dev server starts a few
	// sagas a second.
	outageStartBudget = 3 * time.Minute
	// outageSagasPerClient is how many sagas share a Temporal client
	// connection, each holding a long poll for its result.
	outageSagasPerClient = 40
	// outageTestDeadline bounds the whole test.
	outageTestDeadline = 8 * time.Minute
)

// newShareLoad builds the load of the outage test: n sagas of which a
// share fails on purpose, drawn from seed; failing reports which.
func newShareLoad(t *testing.T, sys *systemtest.System, seed uint64) (l *load, failing map[string]bool) {
	r := rand.New(rand.NewPCG(seed, seed^0x0a7a9e))
	l = &load{t: t, sys: sys, prefix: uuid.NewString()[:8], stock: map[string]int64{}, progress: make(chan struct{}, 1024)}
	for i := range customers {
		l.accounts = append(l.accounts, account{id: fmt.Sprintf("c-%d", i), initial: outageBalance})
	}
	l.accounts = append(l.accounts, account{id: emptyAccount})
	for i := range merchants {
		l.accounts = append(l.accounts, account{id: fmt.Sprintf("m-%d", i)})
	}
	for i := range skus {
		l.stock[fmt.Sprintf("sku-%d", i)] = outageStock
	}
	total := outageBridgeOrders + outageDirectOrders + outageTransfers
	// Exactly the share, spread at random over the sagas.
	fail := make([]bool, total)
	for i := range int(math.Round(outageFailShare * float64(total))) {
		fail[i] = true
	}
	r.Shuffle(total, func(i, j int) { fail[i], fail[j] = fail[j], fail[i] })
	failing = map[string]bool{}
	for i := range total {
		var s *saga
		switch {
		case i < outageBridgeOrders+outageDirectOrders:
			kind := kindDirectOrder
			if i < outageBridgeOrders {
				kind = kindBridgeOrder
			}
			id := fmt.Sprintf("%s-o%03d", l.prefix, i)
			o := events.OrderPlaced{OrderID: id, CustomerID: fmt.Sprintf("c-%d", r.IntN(customers)),
				MerchantID: fmt.Sprintf("m-%d", r.IntN(merchants)), Currency: currency}
			sku := fmt.Sprintf("sku-%d", r.IntN(skus))
			if fail[i] {
				sku = unknownSKU
			}
			line := events.OrderLine{SKU: sku, Quantity: 1 + r.Int64N(3), UnitPrice: 100 + r.Int64N(800)}
			o.Lines, o.Total = []events.OrderLine{line}, line.Quantity*line.UnitPrice
			s = &saga{kind: kind, wfID: contract.OrderWorkflowID(id), order: o, placedID: uuid.NewString()}
		default:
			id := fmt.Sprintf("%s-t%03d", l.prefix, i)
			src := r.IntN(customers)
			dst := (src + 1 + r.IntN(customers-1)) % customers
			in := contract.TransferInput{TransferID: id, SourceAccountID: fmt.Sprintf("c-%d", src),
				TargetAccountID: fmt.Sprintf("c-%d", dst), Amount: 50 + r.Int64N(450), Currency: currency}
			if fail[i] {
				in.SourceAccountID = emptyAccount
			}
			s = &saga{kind: kindTransfer, wfID: contract.TransferWorkflowID(id), transfer: in}
		}
		failing[s.wfID] = fail[i]
		l.sagas = append(l.sagas, s)
	}
	r.Shuffle(len(l.sagas), func(i, j int) { l.sagas[i], l.sagas[j] = l.sagas[j], l.sagas[i] })
	l.inFlight = len(l.sagas)
	return l, failing
}

// refusals probes the broker's AMQP port while it is down and counts how
// many connection attempts were refused and how many got through.
type refusals struct {
	mu               sync.Mutex
	refused, through int
}

func (p *refusals) probe(ctx context.Context, addr string) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		p.mu.Lock()
		if err != nil {
			p.refused++
		} else {
			p.through++
			_ = c.Close()
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// TestLongBrokerOutage stops the system's broker for three command
// timeouts while every saga of the load is in flight, then starts it
// again. Activities time out waiting for replies and are retried with the
// same command ids until the broker is back; no saga takes the outage for
// a business failure, so the share of compensated sagas is the share made
// to fail on purpose, and each compensated saga is one of them. The broker
// is one of the test's own (a one-node rmqcluster), so stopping it
// disturbs no other test.
func TestLongBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: starts a broker and a worker process and runs hundreds of sagas")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), outageTestDeadline)
	defer cancel()
	broker := rmqcluster.Start(t, rmqcluster.Options{Nodes: 1, Prefix: "sagaflowoutage"})
	sys := systemtest.Start(t, systemtest.Options{Broker: broker})
	u, err := url.Parse(broker.URLs()[0])
	require.NoError(t, err)
	l, failing := newShareLoad(t, sys, 7)
	clients := make([]client.Client, (len(l.sagas)+outageSagasPerClient-1)/outageSagasPerClient)
	for i := range clients {
		clients[i], err = client.Dial(client.Options{HostPort: sys.TemporalAddress, Namespace: "default",
			Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
		require.NoError(t, err)
		t.Cleanup(clients[i].Close)
	}
	for i, s := range l.sagas {
		s.client = clients[i%len(clients)]
	}
	l.setUp(ctx)
	res := &result{test: strings.TrimPrefix(t.Name(), "Test")}
	c := &checker{l: l, ctx: ctx, res: res, metricsBefore: map[string]float64{}, poison: map[string][]string{}, killed: map[*systemtest.Worker]bool{}}
	w := sys.Workers()[0]
	reconnectsBefore := scrape(t, w.HTTPAddr)["sagaflow_amqp_reconnects_total"]

	var probes refusals
	var down, up time.Time
	peak := 0
	var startedAll time.Duration
	l.run(ctx, hook{name: "broker outage", after: 0, run: func() {
		sys.StopBroker()
		down = time.Now()
		pctx, stopProbe := context.WithCancel(ctx)
		probed := make(chan struct{})
		go func() {
			defer close(probed)
			probes.probe(pctx, u.Host)
		}()
		// The sagas start on Temporal, which is up, and wait on their
		// steps: hold the broker down until most are in flight (started,
		// not ended: none can end without the broker), and at least the
		// outage's length.
		for time.Since(down) < outage || peak < outageInFlight {
			peak = max(peak, int(l.started.Load()-l.completed.Load()))
			if ctx.Err() != nil || time.Since(down) > outageStartBudget {
				break
			}
			time.Sleep(100 * time.Millisecond) // the load's counters offer no notification
		}
		startedAll = time.Since(down)
		stopProbe()
		<-probed
		up = time.Now()
		sys.StartBroker()
	}})
	t.Logf("load ended after %s; the broker was down %s, %d sagas in flight at most", time.Since(start).Round(time.Millisecond), startedAll.Round(time.Second), peak)

	// The fault happened: the broker refused every connection for the
	// whole window, which outlasted a command's timeout, while the sagas
	// were in flight, and the worker reconnected afterwards.
	require.False(t, down.IsZero(), "the broker was stopped")
	require.Greater(t, up.Sub(down), workflows.CommandTimeout, "down for longer than a command's timeout")
	require.Positive(t, probes.refused, "connections were refused while the broker was down")
	require.Zero(t, probes.through, "no connection got through while the broker was down")
	// A shortfall of sagas in flight (a dev server too busy to start them
	// within the budget) is reported, and the invariants still checked.
	assert.GreaterOrEqual(t, peak, outageInFlight, "sagas in flight during the outage")
	require.Greater(t, scrape(t, w.HTTPAddr)["sagaflow_amqp_reconnects_total"], reconnectsBefore, "the worker reconnected")

	c.check()

	// Only the sagas made to fail compensated, for their business reason.
	wantShare := 0.0
	for _, s := range l.sagas {
		if failing[s.wfID] {
			wantShare++
		}
		if s.err != nil {
			continue
		}
		completed := s.transferRes.Outcome == contract.TransferCompleted
		reason := s.transferRes.Reason
		if s.kind != kindTransfer {
			completed, reason = s.orderRes.Outcome == contract.OrderConfirmed, s.orderRes.Reason
		}
		if completed == failing[s.wfID] {
			t.Errorf("%s %s: completed %v, made to fail %v (reason %q)", s.kind, s.wfID, completed, failing[s.wfID], reason)
		}
	}
	wantShare /= float64(len(l.sagas))
	gotShare := float64(res.compensated) / float64(len(l.sagas))
	require.InDelta(t, wantShare, gotShare, 0.02, "compensated share %.3f, made to fail %.3f", gotShare, wantShare)

	res.faults = fmt.Sprintf("broker down %s with %d sagas in flight, %d connections refused; compensated %.1f%%, made to fail %.1f%%",
		up.Sub(down).Round(time.Second), peak, probes.refused, 100*gotShare, 100*wantShare)
	res.wall = time.Since(start)
	table.mu.Lock()
	table.rows = append(table.rows, *res)
	table.mu.Unlock()
	t.Logf("%+v", *res)
}
