// Package events defines the event envelope shared by every part of the
// system: a CloudEvents 1.0 shaped record with a typed, versioned payload.
// It does no I/O.
package events

import (
	"encoding/json"
	"time"
)

// SpecVersion is the CloudEvents specification version every envelope carries.
const SpecVersion = "1.0"

// ContentTypeJSON is the only data content type the system produces.
const ContentTypeJSON = "application/json"

// Envelope is an immutable fact (an event) or an instruction (a command or a
// reply) as it travels over RabbitMQ. Its attribute names follow CloudEvents 1.0.
type Envelope struct {
	// SpecVersion is always SpecVersion ("1.0").
	SpecVersion string `json:"specversion"`
	// ID identifies the envelope; consumers deduplicate on it.
	ID string `json:"id"`
	// Source names the producer, for example "ledger" or "workflow/transfer-42".
	Source string `json:"source"`
	// Type is the catalog type, for example "funds.withdrawn"; it is also the routing key.
	Type string `json:"type"`
	// Subject names the entity the envelope is about (an account, an order id).
	Subject string `json:"subject,omitempty"`
	// Time is when the fact happened, in UTC.
	Time time.Time `json:"time"`
	// DataContentType is ContentTypeJSON.
	DataContentType string `json:"datacontenttype"`
	// DataVersion is the version of the payload's shape, starting at 1.
	DataVersion int `json:"dataversion"`
	// CorrelationID ties together everything one saga caused (its workflow id).
	CorrelationID string `json:"correlationid,omitempty"`
	// CausationID is the id of the envelope that caused this one.
	CausationID string `json:"causationid,omitempty"`
	// Data is the JSON payload of the type's DataVersion shape.
	Data json.RawMessage `json:"data"`
}
