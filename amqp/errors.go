package amqp

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrNacked is returned by Publish when the broker refused a message with a
// basic.nack, for example because a queue with x-overflow reject-publish is
// full. The caller may retry later.
var ErrNacked = errors.New("amqp: broker nacked the message")

// ErrUnroutable is returned by Publish when the broker returned a mandatory
// message because no queue was bound for its routing key.
var ErrUnroutable = errors.New("amqp: message unroutable")

// ErrConnectionLost is returned by Publish when the channel or connection
// closed before the broker confirmed the message: it may or may not have been
// delivered, so the caller retries and consumers deduplicate.
var ErrConnectionLost = errors.New("amqp: connection lost before the broker confirmed")

// ErrClosed is returned by operations on a Conn, Publisher, Consumer or
// Requester that was closed.
var ErrClosed = errors.New("amqp: closed")

// ErrRequestTimeout is returned by Request when no reply arrived before the
// context's deadline.
var ErrRequestTimeout = errors.New("amqp: request timed out waiting for a reply")

// PermanentError marks a handler error that retrying cannot fix: the consumer
// dead-letters the message at once.
type PermanentError struct{ Err error }

// Error returns the wrapped error's message.
func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent failure"
	}
	return "permanent: " + e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the consumer dead-letters the message without
// retrying. Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// UnavailableError marks a handler error caused by a dependency that is
// down, not by the message (Temporal unreachable while it restarts): the
// consumer retries the delivery through its delay queues for as long as the
// outage lasts, each attempt waiting at most the longest backoff, and never
// dead-letters it for running out of attempts. A message that can only be
// delivered to that dependency is thereby kept, not lost, through an outage
// of any length.
type UnavailableError struct{ Err error }

// Error returns the wrapped error's message.
func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return "dependency unavailable"
	}
	return "unavailable: " + e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable wraps err so that the consumer retries the message until its
// handler succeeds or fails otherwise. Unavailable(nil) returns nil.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &UnavailableError{Err: err}
}

// IsUnavailable reports whether err, or an error it wraps, is an
// UnavailableError (and not a PermanentError as well).
func IsUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u) && !IsPermanent(err)
}

// Stats counts what the publishers and consumers of one Conn did. Read the
// fields with Load; they only grow.
type Stats struct {
	// Published counts messages written to the broker (before confirmation).
	Published atomic.Int64
	// Confirmed counts messages the broker acked and routed.
	Confirmed atomic.Int64
	// Nacked counts messages the broker nacked.
	Nacked atomic.Int64
	// Returned counts mandatory messages the broker returned as unroutable.
	Returned atomic.Int64
	// Consumed counts deliveries received by consumers.
	Consumed atomic.Int64
	// Retried counts deliveries sent to a delay queue after a failure.
	Retried atomic.Int64
	// RetriedUnavailable counts, among Retried, the deliveries whose
	// handler failed with an UnavailableError: retried without an attempt
	// limit while a dependency is down.
	RetriedUnavailable atomic.Int64
	// DeadLettered counts deliveries moved to a dead-letter queue, by
	// any consumer; DeadLettersByConsumer splits it by consumer.
	DeadLettered atomic.Int64
	// DuplicatesDropped counts deliveries acked without running the handler
	// because their message id was already handled.
	DuplicatesDropped atomic.Int64
	// Deferred counts deliveries sent back through a delay queue because
	// another delivery of the same message id was being handled.
	Deferred atomic.Int64
	// Handled counts deliveries whose handler returned nil.
	Handled atomic.Int64
	// Reconnects counts successful reconnections after a lost connection,
	// to whichever node; ReconnectsByNode splits it by node.
	Reconnects atomic.Int64

	nodesMu sync.Mutex
	nodes   map[string]*atomic.Int64 // reconnections by node host:port

	deadMu sync.Mutex
	dead   map[string]*atomic.Int64 // dead letters by consumer name
}

// addNodes makes every node appear in ReconnectsByNode, with 0 until a
// reconnection lands on it.
func (s *Stats) addNodes(hosts []string) {
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	if s.nodes == nil {
		s.nodes = make(map[string]*atomic.Int64, len(hosts))
	}
	for _, h := range hosts {
		if s.nodes[h] == nil {
			s.nodes[h] = new(atomic.Int64)
		}
	}
}

// CountReconnect counts a successful reconnection to the node host
// (host:port) in Reconnects and ReconnectsByNode; the Conn calls it.
func (s *Stats) CountReconnect(host string) {
	s.addNodes([]string{host})
	s.nodesMu.Lock()
	n := s.nodes[host]
	s.nodesMu.Unlock()
	n.Add(1)
	s.Reconnects.Add(1)
}

// ReconnectsByNode returns the successful reconnections by the node
// (host:port of its URL) they reached; every node of the Conn's URL list is
// present, with 0 when none reached it.
func (s *Stats) ReconnectsByNode() map[string]int64 {
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	out := make(map[string]int64, len(s.nodes))
	for h, n := range s.nodes {
		out[h] = n.Load()
	}
	return out
}

// deadLetters returns the dead-letter counter of the consumer, creating it
// at 0: a consumer appears in DeadLettersByConsumer from its start.
func (s *Stats) deadLetters(consumer string) *atomic.Int64 {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	if s.dead == nil {
		s.dead = make(map[string]*atomic.Int64)
	}
	n := s.dead[consumer]
	if n == nil {
		n = new(atomic.Int64)
		s.dead[consumer] = n
	}
	return n
}

// CountDeadLetter counts a delivery the consumer moved to the dead letters
// in DeadLettered and DeadLettersByConsumer.
func (s *Stats) CountDeadLetter(consumer string) {
	s.deadLetters(consumer).Add(1)
	s.DeadLettered.Add(1)
}

// DeadLettersByConsumer returns the deliveries moved to the dead letters by
// the name of the consumer that gave up on them; every consumer of the Conn
// is present, with 0 when it dead-lettered none.
func (s *Stats) DeadLettersByConsumer() map[string]int64 {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	out := make(map[string]int64, len(s.dead))
	for c, n := range s.dead {
		out[c] = n.Load()
	}
	return out
}
