//go:build faults

package faulttest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/notifications"
	"github.com/sagaflow/sagaflow/internal/systemtest"
)

// headerInjectedCopy marks a copy the duplicator published, so that it
// never copies its own copies.
const headerInjectedCopy = "x-faulttest-copy"

// duplicator sends every business event on the exchange again, some twice,
// each copy after a random delay of up to maxDelay: the subscribers get
// duplicates, late, and after events that followed the original.
type duplicator struct {
	t        *testing.T
	active   atomic.Bool
	injected atomic.Int64 // copies published
	wg       sync.WaitGroup

	mu  sync.Mutex
	rnd *rand.Rand
}

const (
	duplicateRatio = 0.3 // share of the events copied
	secondCopy     = 0.3 // share of the copied ones copied twice
	maxCopyDelay   = 2 * time.Second
)

// startDuplicator consumes every business event on a queue of its own and
// publishes copies while active.
func startDuplicator(t *testing.T, sys *systemtest.System) *duplicator {
	d := &duplicator{t: t, rnd: rand.New(rand.NewPCG(7, 11))}
	ctx, cancel := context.WithCancel(context.Background())
	cs, err := sys.Conn.NewConsumer(amqp.ConsumerConfig{
		Name: "faulttest.duplicator", Bindings: notifications.Bindings, Concurrency: 4, Prefetch: 64, Dedup: everyDelivery{},
	}, func(_ context.Context, del amqp.Delivery) error {
		if _, isCopy := del.Headers[headerInjectedCopy]; isCopy || !d.active.Load() {
			return nil
		}
		for _, delay := range d.draw() {
			m := del.Message
			m.Headers = maps.Clone(del.Headers)
			if m.Headers == nil {
				m.Headers = map[string]any{}
			}
			m.Headers[headerInjectedCopy] = true
			d.wg.Go(func() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				for ctx.Err() == nil {
					pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
					err := sys.Publisher.Publish(pctx, m)
					pcancel()
					if err == nil {
						d.injected.Add(1)
						return
					}
				}
			})
		}
		return nil
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.wg.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !cs.Consuming() {
		require.True(t, time.Now().Before(deadline), "duplicator not consuming after 30s")
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// draw returns the delays of the copies of one event: none, one or two.
func (d *duplicator) draw() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rnd.Float64() >= duplicateRatio {
		return nil
	}
	delay := func() time.Duration { return time.Duration(d.rnd.Int64N(int64(maxCopyDelay))) }
	out := []time.Duration{delay()}
	if d.rnd.Float64() < secondCopy {
		out = append(out, delay())
	}
	return out
}

// TestDuplicatedAndReorderedEvents sends copies of the business events
// (order.placed included) during the load, late and out of order: the
// bridge starts each saga once, the read model applies each event once
// whatever the order, and the worker's consumers drop every copy.
func TestDuplicatedAndReorderedEvents(t *testing.T) {
	var dup *duplicator
	var droppedBefore float64
	runScenario(t, scenario{
		hooks: func(f *fixture) []hook {
			dup = startDuplicator(f.t, f.sys)
			return []hook{
				{name: "duplicated and delayed events", after: 0.1, run: func() {
					droppedBefore = f.checker.workerCounter("sagaflow_amqp_duplicates_dropped_total")
					dup.active.Store(true)
				}},
				{name: "no more copies", after: 0.7, run: func() {
					dup.active.Store(false)
					f.count++
				}},
			}
		},
		describe: func(f *fixture) string {
			injected := dup.injected.Load()
			dropped := f.checker.metrics["sagaflow_amqp_duplicates_dropped_total"] - droppedBefore
			require.Positive(f.t, injected, "copies of events were published")
			// Every copy reaches at least one consumer of the worker
			// (notifications takes every business event), which drops it.
			require.GreaterOrEqual(f.t, dropped, float64(injected), "the worker's consumers dropped every copy")
			return fmt.Sprintf("%d event copies injected (up to %s late), %d dropped by the worker", injected, maxCopyDelay, int64(dropped))
		},
	})
}

// workerCounter sums a sagaflow_* counter over the running workers.
func (c *checker) workerCounter(name string) float64 {
	var n float64
	for _, w := range c.l.sys.WorkersRunning("") {
		n += scrape(c.l.t, w.HTTPAddr)[name]
	}
	return n
}
