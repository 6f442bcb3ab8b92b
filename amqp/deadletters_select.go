package amqp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// HeaderRedriveLog records every redrive of a message, oldest first: an
// array of JSON RedriveRecord objects. The consumer keeps the headers of a
// delivery it dead-letters again, so a message that comes back shows who
// sent it back, when, and with which others.
const HeaderRedriveLog = "x-redrive-log"

// maxLoggedIDs bounds the message ids one RedriveRecord keeps, so a redrive
// of thousands does not make every message's headers huge.
const maxLoggedIDs = 20

// RedriveRecord is one redrive of a message, as HeaderRedriveLog keeps it.
type RedriveRecord struct {
	// By names the operator who redrove the message.
	By string `json:"by"`
	// At is when the redrive ran.
	At time.Time `json:"at"`
	// Batch identifies the redrive run; every message of the run has it.
	Batch string `json:"batch"`
	// Count is the number of messages the run sent back.
	Count int `json:"count"`
	// Messages are the ids of the messages the run sent back (the first
	// few when there were many).
	Messages []string `json:"messages"`
	// Forced is true when the run sent messages back regardless of their
	// saga's state.
	Forced bool `json:"forced,omitempty"`
}

// RedriveLog returns the redrives recorded in a message's headers, oldest
// first. Entries it cannot read are skipped.
func RedriveLog(headers map[string]any) []RedriveRecord {
	raw, _ := headers[HeaderRedriveLog].([]any)
	var out []RedriveRecord
	for _, e := range raw {
		var s []byte
		switch v := e.(type) {
		case string:
			s = []byte(v)
		case []byte:
			s = v
		default:
			continue
		}
		var r RedriveRecord
		if json.Unmarshal(s, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// PurgeResult says what PurgeDeadLetters did.
type PurgeResult struct {
	// Purged are the ids of the messages removed, in queue order.
	Purged []string
	// NotFound are the requested ids that were not in the dead-letter queue.
	NotFound []string
}

// RedriveRecorded is Redrive that also appends rec, with its Count and
// Messages filled in from ids, to each message's HeaderRedriveLog. As with
// Redrive, each message is published with a confirm before it is removed
// from the dead-letter queue.
func (c *Conn) RedriveRecorded(ctx context.Context, queue string, ids []string, rec RedriveRecord) (RedriveResult, error) {
	var res RedriveResult
	if len(ids) == 0 {
		return res, fmt.Errorf("redrive %s: no message ids given", queue)
	}
	rec.Count = len(ids)
	rec.Messages = ids[:min(len(ids), maxLoggedIDs)]
	entry, err := json.Marshal(rec)
	if err != nil {
		return res, fmt.Errorf("redrive %s: encode the redrive record: %w", queue, err)
	}
	want := idSet(ids)
	res, err = c.redrive(ctx, queue, func(id string) bool { return want[id] }, func(m *Message, d amqp091.Delivery) {
		old, _ := d.Headers[HeaderRedriveLog].([]any)
		m.Headers[HeaderRedriveLog] = append(append([]any(nil), old...), string(entry))
	})
	res.NotFound = missing(ids, res.Redriven)
	return res, err
}

// PurgeDeadLetters removes the dead letters with the given message ids from
// the consumer's dead-letter queue for good; the others keep their places.
func (c *Conn) PurgeDeadLetters(ctx context.Context, queue string, ids []string) (PurgeResult, error) {
	var res PurgeResult
	if len(ids) == 0 {
		return res, fmt.Errorf("purge %s: no message ids given", queue)
	}
	consumer, dlq, err := deadLetterQueues(queue)
	if err != nil {
		return res, fmt.Errorf("purge: %w", err)
	}
	want := idSet(ids)
	err = c.browse(ctx, dlq, func(_ *amqp091.Channel, d amqp091.Delivery, _ int) (bool, error) {
		if !want[d.MessageId] {
			return true, nil
		}
		if err := d.Ack(false); err != nil {
			return false, fmt.Errorf("remove %s from %s: %w", d.MessageId, dlq, err)
		}
		res.Purged = append(res.Purged, d.MessageId)
		return true, nil
	})
	res.NotFound = missing(ids, res.Purged)
	if err != nil {
		return res, fmt.Errorf("purge %s: %w", consumer, err)
	}
	return res, nil
}

func idSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// missing returns the ids of want that are not in got, each once.
func missing(want, got []string) []string {
	seen := idSet(got)
	var out []string
	for _, id := range want {
		if !seen[id] {
			out = append(out, id)
			seen[id] = true
		}
	}
	return out
}
