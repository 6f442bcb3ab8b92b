//go:build faults

package faulttest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/notifications"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/temporalerr"
	"github.com/sagaflow/sagaflow/workflows"
)

// Shape of every test's load. The stock and the poor customers make some
// sagas fail on their own (insufficient stock or funds, an unknown sku), so
// compensations run in every test, not only where faults cause them.
const (
	currency       = "EUR"
	customers      = 12
	poorCustomers  = 2 // c-0 and c-1 cannot pay much
	merchants      = 3
	skus           = 8
	richBalance    = 50_000
	poorBalance    = 400
	initialStock   = 100
	bridgeOrders   = 110
	directOrders   = 100
	transfers      = 100
	sagasInFlight  = 24
	unknownSKU     = "sku-unknown"
	startAttempts  = 3 * time.Minute // how long a bridge order may take to appear
	operatorPeriod = 2 * time.Second
)

type sagaKind int

const (
	kindBridgeOrder sagaKind = iota
	kindDirectOrder
	kindTransfer
)

func (k sagaKind) String() string {
	return [...]string{"bridge order", "direct order", "transfer"}[k]
}

// saga is one saga of the load and, once it ended, its result.
type saga struct {
	kind     sagaKind
	wfID     string
	order    events.OrderPlaced
	transfer contract.TransferInput
	// placedID is the id of the order.placed event of a bridge order.
	placedID string
	// client starts and awaits the saga; nil: the system's client. A
	// load with hundreds of sagas in flight spreads them over clients of
	// their own, because each awaiting saga holds a long poll, and the
	// server serves a connection only so many streams at once.
	client client.Client

	done        bool
	orderRes    contract.OrderResult
	transferRes contract.TransferResult
	err         error // the workflow failed, or never started
}

// account is an account of the load and its opening balance.
type account struct {
	id      string
	initial int64
}

// load is the shared load driver: the accounts, the stock and the sagas of
// one test, run against one System.
type load struct {
	t        *testing.T
	sys      *systemtest.System
	prefix   string // makes workflow ids unique on the shared dev server
	accounts []account
	stock    map[string]int64 // initial on-hand per sku
	sagas    []*saga
	inFlight int // sagas run at once

	completed atomic.Int64
	// started counts the sagas whose workflow Temporal accepted.
	started  atomic.Int64
	progress chan struct{} // one value per ended saga
	// operatorRetries counts retry-compensation signals sent to sagas whose
	// compensation failed.
	operatorRetries atomic.Int64
	// temporalUnavailable counts the load's calls that found Temporal
	// unreachable and were made again.
	temporalUnavailable atomic.Int64

	audit *auditLog
}

// shape is the size of a load.
type shape struct {
	bridgeOrders, directOrders, transfers int
	// inFlight is how many sagas run at once.
	inFlight int
	// stock is every sku's initial on-hand quantity.
	stock int64
}

// defaultShape is the load of the single-worker tests.
var defaultShape = shape{bridgeOrders: bridgeOrders, directOrders: directOrders, transfers: transfers, inFlight: sagasInFlight, stock: initialStock}

func (s shape) sagas() int { return s.bridgeOrders + s.directOrders + s.transfers }

// newLoad builds the load of defaultShape, drawn from seed.
func newLoad(t *testing.T, sys *systemtest.System, seed uint64) *load {
	return newLoadOf(t, sys, seed, defaultShape)
}

// newLoadOf builds a load of the given shape, drawn from seed.
func newLoadOf(t *testing.T, sys *systemtest.System, seed uint64, sh shape) *load {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	l := &load{t: t, sys: sys, prefix: uuid.NewString()[:8], stock: map[string]int64{}, progress: make(chan struct{}, 1024), inFlight: sh.inFlight}
	for i := range customers {
		bal := int64(richBalance)
		if i < poorCustomers {
			bal = poorBalance
		}
		l.accounts = append(l.accounts, account{id: fmt.Sprintf("c-%d", i), initial: bal})
	}
	for i := range merchants {
		l.accounts = append(l.accounts, account{id: fmt.Sprintf("m-%d", i)})
	}
	for i := range skus {
		l.stock[fmt.Sprintf("sku-%d", i)] = sh.stock
	}
	n := 0
	newOrder := func(kind sagaKind) *saga {
		n++
		id := fmt.Sprintf("%s-o%03d", l.prefix, n)
		o := events.OrderPlaced{
			OrderID:    id,
			CustomerID: fmt.Sprintf("c-%d", r.IntN(customers)),
			MerchantID: fmt.Sprintf("m-%d", r.IntN(merchants)),
			Currency:   currency,
		}
		used := map[string]bool{}
		for range 1 + r.IntN(3) {
			sku := fmt.Sprintf("sku-%d", r.IntN(skus))
			if r.IntN(40) == 0 {
				sku = unknownSKU
			}
			if used[sku] {
				continue
			}
			used[sku] = true
			line := events.OrderLine{SKU: sku, Quantity: 1 + r.Int64N(3), UnitPrice: 100 + r.Int64N(800)}
			o.Lines = append(o.Lines, line)
			o.Total += line.Quantity * line.UnitPrice
		}
		return &saga{kind: kind, wfID: contract.OrderWorkflowID(id), order: o, placedID: uuid.NewString()}
	}
	for range sh.bridgeOrders {
		l.sagas = append(l.sagas, newOrder(kindBridgeOrder))
	}
	for range sh.directOrders {
		l.sagas = append(l.sagas, newOrder(kindDirectOrder))
	}
	for i := range sh.transfers {
		id := fmt.Sprintf("%s-t%03d", l.prefix, i)
		src := r.IntN(customers)
		dst := (src + 1 + r.IntN(customers-1)) % customers
		in := contract.TransferInput{
			TransferID:      id,
			SourceAccountID: fmt.Sprintf("c-%d", src),
			TargetAccountID: fmt.Sprintf("c-%d", dst),
			Amount:          50 + r.Int64N(450),
			Currency:        currency,
		}
		l.sagas = append(l.sagas, &saga{kind: kindTransfer, wfID: contract.TransferWorkflowID(id), transfer: in})
	}
	r.Shuffle(len(l.sagas), func(i, j int) { l.sagas[i], l.sagas[j] = l.sagas[j], l.sagas[i] })
	return l
}

// setUp opens the accounts, stocks the skus and starts the audit consumer,
// which records every business event on the exchange.
func (l *load) setUp(ctx context.Context) {
	for _, a := range l.accounts {
		l.sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen,
			events.LedgerOpen{AccountID: a.id, Currency: currency, Owner: a.id, InitialBalance: a.initial})
	}
	for sku, n := range l.stock {
		l.sys.MustAccept(ctx, contract.InventoryQueue, events.CmdInventoryRestock, events.InventoryRestock{SKU: sku, Quantity: n})
	}
	l.audit = startAudit(l.t, l.sys.Conn)
}

// hook is a fault injected once the given fraction of the sagas ended.
type hook struct {
	name  string
	after float64
	run   func()
}

// run starts every saga, at most l.inFlight at once, runs the hooks as
// the sagas end, acts as the operator of sagas whose compensation failed,
// and returns once every saga ended and every hook ran.
func (l *load) run(ctx context.Context, hooks ...hook) {
	hooksDone := make(chan struct{})
	go func() {
		// A failing hook (require in the harness) ends this goroutine
		// early; the test is failed and the load still finishes.
		defer close(hooksDone)
		for _, h := range hooks {
			want := int64(h.after * float64(len(l.sagas)))
			for l.completed.Load() < want {
				select {
				case <-l.progress:
				case <-ctx.Done():
					return
				}
			}
			l.t.Logf("%s: injecting %s after %d of %d sagas ended", time.Now().Format("15:04:05.000"), h.name, l.completed.Load(), len(l.sagas))
			h.run()
			l.t.Logf("%s: %s done", time.Now().Format("15:04:05.000"), h.name)
		}
	}()
	opCtx, stopOperator := context.WithCancel(ctx)
	operatorDone := make(chan struct{})
	go func() {
		defer close(operatorDone)
		l.operate(opCtx)
	}()

	slots := make(chan struct{}, l.inFlight)
	var wg sync.WaitGroup
	for _, s := range l.sagas {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// Out of time: the sagas not started are reported as never
			// ended, rather than started without a slot to give back.
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			l.runSaga(ctx, s)
			l.completed.Add(1)
			select {
			case l.progress <- struct{}{}:
			default:
			}
		})
	}
	wg.Wait()
	// Every saga ended: wake the hook goroutine for the last time.
	select {
	case l.progress <- struct{}{}:
	default:
	}
	<-hooksDone
	stopOperator()
	<-operatorDone
}

// runSaga starts one saga and waits for its result.
func (l *load) runSaga(ctx context.Context, s *saga) {
	c := l.sys.Temporal
	if s.client != nil {
		c = s.client
	}
	var err error
	switch s.kind {
	case kindBridgeOrder:
		err = l.placeOrder(ctx, s)
		if err == nil {
			err = l.awaitStarted(ctx, s.wfID)
		}
		if err == nil {
			l.started.Add(1)
			err = l.await(ctx, c, s.wfID, &s.orderRes)
		}
	case kindDirectOrder:
		err = l.start(ctx, c, contract.OrderStartOptions(s.order, l.sys.TaskQueue), workflows.OrderWorkflow, s.order)
		if err == nil {
			l.started.Add(1)
			err = l.await(ctx, c, s.wfID, &s.orderRes)
		}
	case kindTransfer:
		err = l.start(ctx, c, contract.TransferStartOptions(s.transfer.TransferID, l.sys.TaskQueue), workflows.TransferWorkflow, s.transfer)
		if err == nil {
			l.started.Add(1)
			err = l.await(ctx, c, s.wfID, &s.transferRes)
		}
	}
	s.err, s.done = err, true
	if err != nil {
		l.t.Logf("%s %s: %v", s.kind, s.wfID, err)
	}
}

// untilAvailable calls f again while Temporal is unreachable (a test that
// restarts it), counting the calls that failed so in temporalUnavailable.
func (l *load) untilAvailable(ctx context.Context, f func() error) error {
	for {
		err := f()
		if !temporalerr.Unavailable(err) || ctx.Err() != nil {
			return err
		}
		l.temporalUnavailable.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// start starts a saga on c, again while Temporal is unreachable: a start
// that took effect before its answer was lost finds the saga started,
// which is as good (the load's workflow ids are its own).
func (l *load) start(ctx context.Context, c client.Client, opts client.StartWorkflowOptions, wf any, arg any) error {
	attempt := 0
	return l.untilAvailable(ctx, func() error {
		attempt++
		_, err := c.ExecuteWorkflow(ctx, opts, wf, arg)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if attempt > 1 && errors.As(err, &started) {
			return nil
		}
		return err
	})
}

// await waits on c for a workflow's result. A wait that the server cuts
// (Temporal unreachable or restarting, the history host serving its long
// poll gone and the stream reset, the frontend restarted) is no outcome of
// the saga: the wait starts again. So does a wait longer than resultPoll,
// which a long poll parked on a history host that lost the workflow's
// shard can become. A workflow that failed is an outcome, and returned.
func (l *load) await(ctx context.Context, c client.Client, wfID string, out any) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, resultPoll)
		err := c.GetWorkflow(attempt, wfID, "").Get(attempt, out)
		cancel()
		if err == nil || ctx.Err() != nil || !(waitCut(err) || temporalerr.Unavailable(err)) {
			return err
		}
		if temporalerr.Unavailable(err) {
			l.temporalUnavailable.Add(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// resultPoll bounds one wait of await.
const resultPoll = 30 * time.Second

// waitCut reports whether err ended the wait for a result, not the workflow.
func waitCut(err error) bool {
	var wfErr *temporal.WorkflowExecutionError
	if errors.As(err, &wfErr) {
		return false
	}
	switch serviceerror.ToStatus(err).Code() {
	case codes.Canceled, codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// placeOrder publishes the order.placed event, again after a lost confirm:
// the bridge starts the saga once per order id whatever the copies.
func (l *load) placeOrder(ctx context.Context, s *saga) error {
	env, err := events.New(events.TypeOrderPlaced, "faulttest", s.order,
		events.WithID(s.placedID), events.WithSubject(s.order.OrderID), events.WithCorrelationID(s.wfID))
	if err != nil {
		return err
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := l.sys.PublishEvent(pctx, env)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish order.placed %s: %w", s.order.OrderID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// awaitStarted waits for the bridge to start a workflow. Temporal offers no
// notification of a start by someone else, so this polls with a deadline.
func (l *load) awaitStarted(ctx context.Context, wfID string) error {
	deadline := time.Now().Add(startAttempts)
	for {
		_, err := l.sys.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
		var notFound *serviceerror.NotFound
		if temporalerr.Unavailable(err) {
			l.temporalUnavailable.Add(1)
		} else if err == nil || !errors.As(err, &notFound) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the bridge did not start %s within %s: %w", wfID, startAttempts, errLost)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// errLost marks a saga whose start event was lost.
var errLost = errors.New("lost")

// operate plays the operator: a saga whose compensation failed after its
// retries waits for a person, who retries it once the cause (here, an
// injected fault) is gone.
func (l *load) operate(ctx context.Context) {
	q := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running' AND SagaStatus = '%s'",
		l.sys.TaskQueue, contract.StatusCompensationFailed)
	tick := time.NewTicker(operatorPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ids, err := l.list(ctx, q)
		if err != nil {
			continue
		}
		for _, id := range ids {
			err := l.sys.Temporal.SignalWorkflow(ctx, id, "", contract.SignalRetryCompensation,
				contract.OperatorAction{Operator: "faulttest", Reason: "retry after an injected fault"})
			if err == nil {
				l.operatorRetries.Add(1)
				l.t.Logf("operator: retried the compensation of %s", id)
			}
		}
	}
}

// list returns the ids of the workflows a visibility query matches.
func (l *load) list(ctx context.Context, query string) ([]string, error) {
	var ids []string
	var token []byte
	for {
		resp, err := l.sys.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.Executions {
			ids = append(ids, e.Execution.WorkflowId)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return ids, nil
		}
	}
}

// auditLog is a consumer of every business event on the exchange, standing
// for any subscriber: it records each message id and how often it came.
type auditLog struct {
	mu   sync.Mutex
	seen map[string]int
}

func (a *auditLog) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[id]
}

func (a *auditLog) duplicates() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.seen {
		n += c - 1
	}
	return n
}

const auditQueue = "faulttest.audit"

func startAudit(t *testing.T, conn *amqp.Conn) *auditLog {
	a := &auditLog{seen: map[string]int{}}
	cs, err := conn.NewConsumer(amqp.ConsumerConfig{
		Name:        auditQueue,
		Bindings:    notifications.Bindings,
		Concurrency: 8,
		Prefetch:    64,
		Dedup:       everyDelivery{},
	}, func(_ context.Context, d amqp.Delivery) error {
		a.mu.Lock()
		a.seen[d.ID]++
		a.mu.Unlock()
		return nil
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for !cs.Consuming() {
		require.True(t, time.Now().Before(deadline), "audit consumer not consuming after 30s")
		time.Sleep(20 * time.Millisecond)
	}
	return a
}

// everyDelivery is an amqp.DedupStore that lets every delivery through, so
// the audit log sees the duplicates.
type everyDelivery struct{}

func (everyDelivery) Claim(context.Context, string) (amqp.ClaimResult, error) {
	return amqp.ClaimAcquired, nil
}
func (everyDelivery) Complete(context.Context, string, time.Duration) error { return nil }
func (everyDelivery) Release(context.Context, string) error                 { return nil }
