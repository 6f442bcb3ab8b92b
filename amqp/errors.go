package amqp

import (
	"errors"
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
	// DeadLettered counts deliveries moved to a dead-letter queue.
	DeadLettered atomic.Int64
	// DuplicatesDropped counts deliveries acked without running the handler
	// because their message id was already handled.
	DuplicatesDropped atomic.Int64
	// Deferred counts deliveries sent back through a delay queue because
	// another delivery of the same message id was being handled.
	Deferred atomic.Int64
	// Handled counts deliveries whose handler returned nil.
	Handled atomic.Int64
	// Reconnects counts successful reconnections after a lost connection.
	Reconnects atomic.Int64
}
