package amqp

import (
	"context"
	"sync"
	"time"
)

// ClaimResult is the outcome of DedupStore.Claim.
type ClaimResult int

const (
	// ClaimAcquired means the caller now holds the id and must call
	// Complete after handling it or Release after failing.
	ClaimAcquired ClaimResult = iota + 1
	// ClaimDuplicate means the id was handled within the window: drop the
	// message.
	ClaimDuplicate
	// ClaimBusy means another delivery of the id is being handled right now:
	// its outcome is unknown, so the message must come back later.
	ClaimBusy
)

// DedupStore remembers which message ids were handled, so that a consumer
// runs its handler at most once per id within a window. Implementations must
// be safe for concurrent use. A durable implementation (a database inbox)
// can replace the in-memory default.
type DedupStore interface {
	// Claim reserves id for handling. It returns ClaimDuplicate when id was
	// completed less than its window ago and ClaimBusy while another claim
	// on id is held.
	Claim(ctx context.Context, id string) (ClaimResult, error)
	// Complete records id as handled; Claim reports it as a duplicate for
	// window.
	Complete(ctx context.Context, id string, window time.Duration) error
	// Release drops a claim after a failed handling, so a retry of the same
	// id can claim it again.
	Release(ctx context.Context, id string) error
}

// MemoryDedup is an in-memory DedupStore holding at most a fixed number of
// completed ids; the oldest are forgotten first, and an id is forgotten
// once its window has passed. It is lost on restart, so services that need
// exactly-once effects keep an inbox in their database.
type MemoryDedup struct {
	mu       sync.Mutex
	capacity int
	now      func() time.Time
	entries  map[string]dedupEntry
	order    []dedupOrder // completion order, for eviction; a ring from head
	head     int
}

type dedupEntry struct {
	inFlight bool
	expires  time.Time
}

type dedupOrder struct {
	id      string
	expires time.Time
}

// DefaultDedupCapacity is the number of completed ids the default in-memory
// store remembers. Every consumer holds one, at about 170 bytes an id (its
// map entry and its place in the completion order) and twice that in a
// process's footprint, once the garbage collector's headroom is counted:
// 10,000 ids are a few MB per consumer. That covers the duplicates it is
// for, redeliveries after a dropped connection and a relay's republish
// after a crash, which come within seconds or minutes: at 50 events a
// second it is over three minutes of ids. A consumer that must recognise
// older duplicates keeps their ids in its database (an inbox, the orders
// projection's applied events) or passes a larger store.
const DefaultDedupCapacity = 10_000

// NewMemoryDedup returns a MemoryDedup remembering up to capacity completed
// ids (DefaultDedupCapacity when capacity <= 0).
func NewMemoryDedup(capacity int) *MemoryDedup {
	if capacity <= 0 {
		capacity = DefaultDedupCapacity
	}
	return &MemoryDedup{capacity: capacity, now: time.Now, entries: make(map[string]dedupEntry)}
}

// Claim implements DedupStore.
func (m *MemoryDedup) Claim(_ context.Context, id string) (ClaimResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[id]; ok {
		if e.inFlight {
			return ClaimBusy, nil
		}
		if m.now().Before(e.expires) {
			return ClaimDuplicate, nil
		}
	}
	m.entries[id] = dedupEntry{inFlight: true}
	return ClaimAcquired, nil
}

// Complete implements DedupStore.
func (m *MemoryDedup) Complete(_ context.Context, id string, window time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	exp := now.Add(window)
	m.entries[id] = dedupEntry{expires: exp}
	m.order = append(m.order, dedupOrder{id: id, expires: exp})
	for len(m.order)-m.head > m.capacity {
		m.evictOldest()
	}
	// Ids whose window passed would only answer "not a duplicate" while
	// taking room: forget them. The order is by completion, which is the
	// order of expiry for a consumer's one window; an id behind a longer
	// window waits for the capacity instead.
	for m.head < len(m.order) && !now.Before(m.order[m.head].expires) {
		m.evictOldest()
	}
	// Compact the ring once the consumed prefix dominates it.
	if m.head > 1024 && m.head > len(m.order)/2 {
		m.order = append(m.order[:0:0], m.order[m.head:]...)
		m.head = 0
	}
	return nil
}

func (m *MemoryDedup) evictOldest() {
	o := m.order[m.head]
	m.order[m.head] = dedupOrder{}
	m.head++
	// Only forget the id if this record is its latest completion and no
	// new claim is in flight.
	if e, ok := m.entries[o.id]; ok && !e.inFlight && e.expires.Equal(o.expires) {
		delete(m.entries, o.id)
	}
}

// Release implements DedupStore.
func (m *MemoryDedup) Release(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[id]; ok && e.inFlight {
		delete(m.entries, id)
	}
	return nil
}

// Len returns the number of ids the store holds, claimed or completed.
func (m *MemoryDedup) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// NoDedup is a DedupStore that lets every delivery through, for consumers
// that must see repeats: a service whose inbox answers a repeated command
// with its stored reply, or a query responder that answers every request.
type NoDedup struct{}

// Claim always acquires.
func (NoDedup) Claim(context.Context, string) (ClaimResult, error) { return ClaimAcquired, nil }

// Complete remembers nothing.
func (NoDedup) Complete(context.Context, string, time.Duration) error { return nil }

// Release has nothing to release.
func (NoDedup) Release(context.Context, string) error { return nil }
