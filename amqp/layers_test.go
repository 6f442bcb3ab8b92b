package amqp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// logs is a JSON logger whose records a test reads back.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func newLogs() (*logs, *slog.Logger) {
	l := &logs{}
	return l, slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns every record logged, each as its JSON object.
func (l *logs) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		out = append(out, r)
	}
	return out
}

// expect returns the only record logged with msg, checking that it has level
// and names the message id of testDelivery; with msg "" it checks that
// nothing was logged and returns nil.
func (l *logs) expect(t *testing.T, msg, level string) map[string]any {
	t.Helper()
	if msg == "" {
		require.Empty(t, l.records(t))
		return nil
	}
	var found []map[string]any
	for _, r := range l.records(t) {
		if r["msg"] == msg {
			found = append(found, r)
		}
	}
	require.Len(t, found, 1, "records %q in %v", msg, l.records(t))
	require.Equal(t, level, found[0]["level"])
	require.Equal(t, "m-1", found[0]["message_id"])
	return found[0]
}

// fakePublisher records what it publishes and fails with err when set.
type fakePublisher struct {
	err  error
	sent []Message
}

func (p *fakePublisher) Publish(_ context.Context, m Message) error {
	if p.err != nil {
		return p.err
	}
	p.sent = append(p.sent, m)
	return nil
}

// fakeDedup answers Claim with claim/claimErr and records the other calls.
type fakeDedup struct {
	claim                   ClaimResult
	claimErr                error
	completeErr, releaseErr error
	completed, released     []string
	window                  time.Duration
}

func (f *fakeDedup) Claim(context.Context, string) (ClaimResult, error) { return f.claim, f.claimErr }

func (f *fakeDedup) Complete(_ context.Context, id string, window time.Duration) error {
	f.completed = append(f.completed, id)
	f.window = window
	return f.completeErr
}

func (f *fakeDedup) Release(_ context.Context, id string) error {
	f.released = append(f.released, id)
	return f.releaseErr
}

// probe is a handler that counts its calls and returns err.
type probe struct {
	calls int
	err   error
}

func (p *probe) handle(context.Context, Delivery) error {
	p.calls++
	return p.err
}

func testDelivery(attempt int) Delivery {
	return Delivery{
		Message: Message{
			Exchange: "sagas.events", RoutingKey: "order.placed", ID: "m-1", Type: "order.placed",
			CorrelationID: "order-1", ContentType: "application/json", Body: []byte(`{"id":"m-1"}`),
			Headers: map[string]any{"traceparent": "00-abc-def-01"},
		},
		Queue:   "orders.projection",
		Attempt: attempt,
	}
}

func TestChainRunsLayersOutermostFirst(t *testing.T) {
	var order []string
	named := func(name string) layer {
		return func(next Handler) Handler {
			return func(ctx context.Context, d Delivery) error {
				order = append(order, name)
				return next(ctx, d)
			}
		}
	}
	h := chain(func(context.Context, Delivery) error { order = append(order, "handler"); return nil },
		named("outer"), named("inner"))
	require.NoError(t, h(t.Context(), testDelivery(1)))
	require.Equal(t, []string{"outer", "inner", "handler"}, order)
}

func TestRecoverPanicTurnsAPanicIntoAnError(t *testing.T) {
	failure := errors.New("database down")
	tests := []struct {
		name    string
		handler Handler
		wantErr string
	}{
		{"success passes", func(context.Context, Delivery) error { return nil }, ""},
		{"an error passes unchanged", func(context.Context, Delivery) error { return failure }, "database down"},
		{"a panic becomes an error with its value and stack", func(context.Context, Delivery) error { panic("boom") }, "panic: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := recoverPanic(tt.handler)(t.Context(), testDelivery(1))
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			if strings.HasPrefix(tt.wantErr, "panic") {
				require.ErrorContains(t, err, "TestRecoverPanicTurnsAPanicIntoAnError", "the stack is recorded")
			} else {
				require.ErrorIs(t, err, failure)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name         string
		decoder      func(Delivery) error
		wantErr      string // "" for none
		wantHandlers int
	}{
		{"no decoder lets every delivery through", nil, "", 1},
		{"an accepted delivery reaches the handler", func(Delivery) error { return nil }, "", 1},
		{"a rejected delivery never reaches the handler", func(Delivery) error { return errors.New("not an envelope") }, "decode: not an envelope", 0},
		{"a panicking decoder rejects the delivery", func(Delivery) error { panic("bad byte") }, "decode: panic: bad byte", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &probe{}
			err := decode(tt.decoder)(next.handle)(t.Context(), testDelivery(1))
			require.Equal(t, tt.wantHandlers, next.calls)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.True(t, strings.HasPrefix(err.Error(), "decode: "), "the dead-letter reason names the decoder: %q", err)
			require.True(t, giveUp(err), "an undecodable delivery is not retried")
		})
	}
}

func TestDedup(t *testing.T) {
	failure := errors.New("handler failed")
	storeDown := errors.New("store down")
	tests := []struct {
		name          string
		id            string
		store         fakeDedup
		handlerErr    error
		wantErr       error // matched with errors.Is; nil for success
		wantHandlers  int
		wantCompleted []string
		wantReleased  []string
		wantDropped   int64
		wantLog       string // a warning naming the message id, or ""
	}{
		{name: "a new id is handled and recorded", id: "m-1", store: fakeDedup{claim: ClaimAcquired},
			wantHandlers: 1, wantCompleted: []string{"m-1"}},
		{name: "a handled id is dropped", id: "m-1", store: fakeDedup{claim: ClaimDuplicate},
			wantDropped: 1},
		{name: "an id in flight is deferred", id: "m-1", store: fakeDedup{claim: ClaimBusy},
			wantErr: errClaimBusy},
		{name: "a failed handling releases the claim", id: "m-1", store: fakeDedup{claim: ClaimAcquired}, handlerErr: failure,
			wantErr: failure, wantHandlers: 1, wantReleased: []string{"m-1"}},
		{name: "a claim the store cannot make fails the delivery", id: "m-1", store: fakeDedup{claimErr: storeDown},
			wantErr: storeDown},
		{name: "a completion the store cannot record still succeeds and is logged", id: "m-1",
			store:        fakeDedup{claim: ClaimAcquired, completeErr: storeDown},
			wantHandlers: 1, wantCompleted: []string{"m-1"}, wantLog: "record handled message id"},
		{name: "a release the store cannot make is logged and the handler's error kept", id: "m-1",
			store: fakeDedup{claim: ClaimAcquired, releaseErr: storeDown}, handlerErr: failure,
			wantErr: failure, wantHandlers: 1, wantReleased: []string{"m-1"}, wantLog: "release dedup claim after a failed handling"},
		{name: "a delivery without an id is not deduplicated", id: "", store: fakeDedup{claim: ClaimDuplicate},
			wantHandlers: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := tt.store
			next := &probe{err: tt.handlerErr}
			var stats Stats
			l, logger := newLogs()
			d := testDelivery(2)
			d.ID = tt.id
			err := dedup(&store, time.Hour, &stats, logger)(next.handle)(t.Context(), d)
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantErr)
			}
			require.Equal(t, tt.wantHandlers, next.calls, "handler calls")
			require.Equal(t, tt.wantCompleted, store.completed, "completed ids")
			if tt.wantCompleted != nil {
				require.Equal(t, time.Hour, store.window)
			}
			require.Equal(t, tt.wantReleased, store.released, "released ids")
			require.EqualValues(t, tt.wantDropped, stats.DuplicatesDropped.Load())
			if r := l.expect(t, tt.wantLog, "WARN"); r != nil {
				require.Equal(t, "store down", r["error"])
			}
		})
	}
}

func TestCountHandledCountsOnlySuccess(t *testing.T) {
	var stats Stats
	ok, failing := &probe{}, &probe{err: errors.New("no")}
	require.NoError(t, countHandled(&stats)(ok.handle)(t.Context(), testDelivery(1)))
	require.Error(t, countHandled(&stats)(failing.handle)(t.Context(), testDelivery(1)))
	require.EqualValues(t, 1, stats.Handled.Load())
}

func TestRetry(t *testing.T) {
	failure := errors.New("database down")
	queue := func(attempt int) string { return fmt.Sprintf("q.retry.%d", attempt) }
	tests := []struct {
		name       string
		handlerErr error
		attempt    int
		publishErr error
		wantErr    error  // matched with errors.Is; nil when the layer took the delivery
		wantQueue  string // delay queue published to, "" for none
		wantHeader int64  // HeaderAttempts of the published copy
		wantCause  string // HeaderLastError of the published copy
		wantRetry  int64
		wantDefer  int64
		// wantUnavailable is Stats.RetriedUnavailable.
		wantUnavailable int64
		wantLog         string
	}{
		{name: "success passes", attempt: 1},
		{name: "a failure with attempts left waits in the delay queue of its attempt", handlerErr: failure, attempt: 2,
			wantQueue: "q.retry.2", wantHeader: 2, wantCause: "database down", wantRetry: 1, wantLog: "handling failed; retrying"},
		{name: "the last attempt's failure goes on to the dead letters", handlerErr: failure, attempt: 3, wantErr: failure},
		{name: "a permanent failure goes on to the dead letters at once", handlerErr: Permanent(failure), attempt: 1, wantErr: failure},
		{name: "an undecodable delivery goes on to the dead letters at once", handlerErr: &undecodableError{failure}, attempt: 1, wantErr: failure},
		{name: "a delivery whose id is in flight waits without counting an attempt", handlerErr: errClaimBusy, attempt: 2,
			wantQueue: "q.retry.1", wantHeader: 1, wantDefer: 1},
		{name: "a first delivery whose id is in flight waits in the first delay queue", handlerErr: errClaimBusy, attempt: 1,
			wantQueue: "q.retry.1", wantHeader: 0, wantDefer: 1},
		{name: "a dependency unavailable waits in the delay queue of its attempt", handlerErr: Unavailable(failure), attempt: 2,
			wantQueue: "q.retry.2", wantHeader: 2, wantCause: "unavailable: database down", wantRetry: 1, wantUnavailable: 1, wantLog: "handling failed; retrying"},
		{name: "a dependency unavailable past the last attempt waits in the longest delay queue, never dead-lettered", handlerErr: Unavailable(failure), attempt: 7,
			wantQueue: "q.retry.2", wantHeader: 7, wantCause: "unavailable: database down", wantRetry: 1, wantUnavailable: 1, wantLog: "handling failed; retrying"},
		{name: "a permanent failure wins over unavailable", handlerErr: Permanent(Unavailable(failure)), attempt: 1, wantErr: failure},
		{name: "a delivery the delay queue does not take is not moved and is logged", handlerErr: failure, attempt: 1,
			publishErr: ErrNacked, wantErr: errNotMoved, wantLog: "send to delay queue failed; returning the delivery to the broker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{err: tt.publishErr}
			var stats Stats
			l, logger := newLogs()
			next := &probe{err: tt.handlerErr}
			err := retry(3, queue, pub, &stats, logger)(next.handle)(t.Context(), testDelivery(tt.attempt))
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantErr)
			}
			if tt.wantQueue == "" {
				require.Empty(t, pub.sent)
			} else {
				require.Len(t, pub.sent, 1)
				m := pub.sent[0]
				require.Equal(t, "", m.Exchange, "a delay queue is reached through the default exchange")
				require.Equal(t, tt.wantQueue, m.RoutingKey)
				require.Equal(t, "m-1", m.ID)
				require.Equal(t, tt.wantHeader, m.Headers[HeaderAttempts])
				cause, ok := m.Headers[HeaderLastError]
				require.Equal(t, tt.wantCause != "", ok)
				if ok {
					require.Equal(t, tt.wantCause, cause)
				}
			}
			require.EqualValues(t, tt.wantRetry, stats.Retried.Load(), "retried")
			require.EqualValues(t, tt.wantDefer, stats.Deferred.Load(), "deferred")
			require.EqualValues(t, tt.wantUnavailable, stats.RetriedUnavailable.Load(), "retried while unavailable")
			level := "INFO"
			if tt.publishErr != nil {
				level = "ERROR"
			}
			r := l.expect(t, tt.wantLog, level)
			if r == nil {
				return
			}
			require.EqualValues(t, tt.attempt, r["attempt"])
			if tt.publishErr != nil {
				require.Contains(t, r["error"], ErrNacked.Error())
				require.Equal(t, "database down", r["cause"])
			}
		})
	}
}

func TestDeadLetter(t *testing.T) {
	failure := errors.New("order is unknown")
	tests := []struct {
		name       string
		handlerErr error
		publishErr error
		wantErr    error
		wantSent   bool
		wantLog    string
		wantLevel  string
	}{
		{name: "success passes", handlerErr: nil},
		{name: "a failure goes to the dead letters with its reason", handlerErr: Permanent(failure),
			wantSent: true, wantLog: "dead-lettered", wantLevel: "WARN"},
		{name: "a delivery another layer could not move passes", handlerErr: fmt.Errorf("%w: to q.retry.1: %w", errNotMoved, ErrNacked),
			wantErr: errNotMoved},
		{name: "a delivery the dead letters do not take is not moved and is logged", handlerErr: failure, publishErr: ErrConnectionLost,
			wantErr: errNotMoved, wantLog: "dead-lettering failed; returning the delivery to the broker", wantLevel: "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{err: tt.publishErr}
			var stats Stats
			l, logger := newLogs()
			next := &probe{err: tt.handlerErr}
			err := deadLetter("sagas.dlx", "orders.projection", pub, &stats, logger)(next.handle)(t.Context(), testDelivery(4))
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantErr)
			}
			if tt.wantSent {
				require.Len(t, pub.sent, 1)
				m := pub.sent[0]
				require.Equal(t, "sagas.dlx", m.Exchange)
				require.Equal(t, "orders.projection", m.RoutingKey, "routed by the consumer's name")
				require.EqualValues(t, 4, m.Headers[HeaderAttempts])
				require.Equal(t, "permanent: order is unknown", m.Headers[HeaderLastError])
				require.EqualValues(t, 1, stats.DeadLettered.Load())
				require.Equal(t, map[string]int64{"orders.projection": 1}, stats.DeadLettersByConsumer(), "counted by the consumer")
			} else {
				require.Empty(t, pub.sent)
				require.Zero(t, stats.DeadLettered.Load())
				require.Equal(t, map[string]int64{"orders.projection": 0}, stats.DeadLettersByConsumer(), "the consumer is listed before its first dead letter")
			}
			l.expect(t, tt.wantLog, tt.wantLevel)
		})
	}
}

func TestRepublishedKeepsTheMessageAndRecordsWhy(t *testing.T) {
	d := testDelivery(3)
	d.Headers = map[string]any{
		"traceparent": "00-abc-def-01", HeaderAttempts: int64(2), HeaderLastError: "earlier",
		"x-death": []any{"broker bookkeeping"}, "x-first-death-queue": "q", "x-last-death-reason": "expired",
	}
	m := republished(d, 3, errors.New(strings.Repeat("e", 5000)))
	require.Equal(t, map[string]any{
		"traceparent":            "00-abc-def-01",
		HeaderAttempts:           int64(3),
		HeaderLastError:          strings.Repeat("e", 4096),
		HeaderOriginalRoutingKey: "order.placed",
		HeaderOriginalExchange:   "sagas.events",
	}, m.Headers)
	require.Equal(t, Message{ID: "m-1", Type: "order.placed", CorrelationID: "order-1", ContentType: "application/json",
		Headers: m.Headers, Body: []byte(`{"id":"m-1"}`)}, m)
	require.Equal(t, int64(2), d.Headers[HeaderAttempts], "the delivery's own headers are not changed")

	deferred := republished(d, 2, nil)
	require.Equal(t, "earlier", deferred.Headers[HeaderLastError], "without a new cause the last error stays")
}

// fakeAcknowledger records acks and nacks and fails them with err.
type fakeAcknowledger struct {
	err          error
	acks, nacks  []uint64
	requeued     bool
	multipleUsed bool
}

func (a *fakeAcknowledger) Ack(tag uint64, multiple bool) error {
	a.acks = append(a.acks, tag)
	a.multipleUsed = a.multipleUsed || multiple
	return a.err
}

func (a *fakeAcknowledger) Nack(tag uint64, multiple, requeue bool) error {
	a.nacks = append(a.nacks, tag)
	a.requeued = requeue
	a.multipleUsed = a.multipleUsed || multiple
	return a.err
}

func (a *fakeAcknowledger) Reject(tag uint64, requeue bool) error {
	return a.Nack(tag, false, requeue)
}

func TestHandleAcksOrReturnsTheDelivery(t *testing.T) {
	notMoved := fmt.Errorf("%w: to the dead letters: %w", errNotMoved, ErrConnectionLost)
	tests := []struct {
		name      string
		chainErr  error
		ackErr    error
		wantAcks  int
		wantNacks int
		wantLog   string
	}{
		{name: "a delivery the layers took is acked", wantAcks: 1},
		{name: "a delivery they could not move is returned to the broker", chainErr: notMoved, wantNacks: 1},
		{name: "an ack that fails is logged", ackErr: amqp091.ErrClosed, wantAcks: 1, wantLog: "ack"},
		{name: "a nack that fails is logged", chainErr: notMoved, ackErr: amqp091.ErrClosed, wantNacks: 1,
			wantLog: "return a delivery that could not be moved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, logger := newLogs()
			var seen []Delivery
			cs := &Consumer{cfg: ConsumerConfig{Name: "q"}, stats: &Stats{}, logger: logger,
				h: func(_ context.Context, d Delivery) error { seen = append(seen, d); return tt.chainErr }}
			ack := &fakeAcknowledger{err: tt.ackErr}
			cs.handle(t.Context(), amqp091.Delivery{Acknowledger: ack, DeliveryTag: 7, MessageId: "m-1",
				Exchange: "", RoutingKey: "q",
				Headers: amqp091.Table{HeaderAttempts: int32(1), HeaderOriginalRoutingKey: "order.placed", HeaderOriginalExchange: "sagas.events"}})

			require.Len(t, seen, 1)
			require.Equal(t, Delivery{Message: Message{Exchange: "sagas.events", RoutingKey: "order.placed", ID: "m-1",
				Headers: seen[0].Headers}, Queue: "q", Attempt: 2}, seen[0], "the layers see the original routing and the attempt")
			require.EqualValues(t, 1, cs.stats.Consumed.Load())
			require.Len(t, ack.acks, tt.wantAcks)
			require.Len(t, ack.nacks, tt.wantNacks)
			require.False(t, ack.multipleUsed, "only this delivery is acknowledged")
			if tt.wantNacks > 0 {
				require.True(t, ack.requeued, "returned to its queue")
			}
			if r := l.expect(t, tt.wantLog, "WARN"); r != nil {
				require.EqualValues(t, 7, r["delivery_tag"])
				require.Equal(t, amqp091.ErrClosed.Error(), r["error"])
			}
		})
	}
}
