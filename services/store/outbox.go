package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// OutboxMessage is a message as the outbox keeps it and the relay hands it
// to its Publisher. It holds only what the outbox stores: a broker client
// adds its own properties (content type, persistence) when it publishes.
type OutboxMessage struct {
	// Exchange is the exchange to publish to; "" is the default exchange.
	Exchange string
	// RoutingKey is the event or command type on an exchange, or the queue
	// name on the default exchange.
	RoutingKey string
	// ID is the message id, the key consumers deduplicate on.
	ID string
	// Type is the envelope type.
	Type string
	// CorrelationID is the broker's correlation id (a reply's request).
	CorrelationID string
	// Body is the encoded JSON envelope.
	Body []byte
	// TraceContext is the W3C trace context (traceparent, tracestate) of
	// the transaction that wrote the row, so that its later publish goes
	// on in the same trace; nil when tracing is off.
	TraceContext map[string]string
	// CreatedAt is when the row was written. The store sets it when it reads
	// a row; Enqueue ignores it and records the commit's clock.
	CreatedAt time.Time
}

// Enqueue writes messages to the producer's outbox inside the transaction;
// the producer's relay publishes them after the commit, in this order.
func (tx *Tx) Enqueue(ctx context.Context, producer string, msgs ...OutboxMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	// One multi-row INSERT: a round trip per command, not per message.
	now := nowMicros()
	var q strings.Builder
	q.WriteString(`INSERT INTO outbox
		(producer, message_id, exchange, routing_key, message_type, correlation_id, envelope, created_at, trace_context) VALUES `)
	args := make([]any, 0, 9*len(msgs))
	for i, m := range msgs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		tc, err := encodeTraceContext(m.TraceContext)
		if err != nil {
			return fmt.Errorf("store: outbox insert %s: %w", m.ID, err)
		}
		args = append(args, producer, m.ID, m.Exchange, m.RoutingKey, m.Type, m.CorrelationID, string(m.Body), now, tc)
	}
	if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("store: outbox insert %s: %w", msgs[0].ID, err)
	}
	tx.enqueued = true
	return nil
}

// OutboxRow is one outbox row as the relay and the tests see it.
type OutboxRow struct {
	// Seq is the creation order.
	Seq int64
	// Message is what the relay publishes.
	Message OutboxMessage
	// SentAt is when the broker confirmed it; zero while pending.
	SentAt time.Time
	// LastError is why a row was given up on (for example "unroutable").
	LastError string
}

// Outbox lists the producer's rows in creation order, pending and sent.
func (db *DB) Outbox(ctx context.Context, producer string) ([]OutboxRow, error) {
	rows, err := db.Query(ctx, `SELECT seq, message_id, exchange, routing_key, message_type, correlation_id, envelope,
		created_at, COALESCE(sent_at, 0), COALESCE(last_error, ''), COALESCE(trace_context, '') FROM outbox WHERE producer = ? ORDER BY seq`, producer)
	if err != nil {
		return nil, fmt.Errorf("store: read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var (
			r             OutboxRow
			body          string
			created, sent int64
			tc            string
		)
		if err := rows.Scan(&r.Seq, &r.Message.ID, &r.Message.Exchange, &r.Message.RoutingKey, &r.Message.Type,
			&r.Message.CorrelationID, &body, &created, &sent, &r.LastError, &tc); err != nil {
			return nil, fmt.Errorf("store: read outbox: %w", err)
		}
		r.Message.TraceContext = decodeTraceContext(tc)
		r.Message.Body = []byte(body)
		r.Message.CreatedAt = time.UnixMicro(created).UTC()
		if sent != 0 {
			r.SentAt = time.UnixMicro(sent)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PendingCount counts the producer's rows not yet published.
func (db *DB) PendingCount(ctx context.Context, producer string) (int, error) {
	var n int
	if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM outbox WHERE producer = ? AND sent_at IS NULL", producer).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count outbox: %w", err)
	}
	return n, nil
}

// encodeTraceContext is the trace_context column of a row: JSON, or NULL
// for none.
func encodeTraceContext(tc map[string]string) (any, error) {
	if len(tc) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(tc)
	if err != nil {
		return nil, fmt.Errorf("encode trace context: %w", err)
	}
	return string(b), nil
}

// decodeTraceContext reads the trace_context column. A value that does not
// decode is dropped: the row is still published, outside its trace.
func decodeTraceContext(s string) map[string]string {
	if s == "" {
		return nil
	}
	var tc map[string]string
	if json.Unmarshal([]byte(s), &tc) != nil || len(tc) == 0 {
		return nil
	}
	return tc
}
