package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// MaxAttributeLength bounds the envelope's text attributes (source, subject,
// correlation and causation ids) in runes; the id is bounded by MaxIDLength.
const MaxAttributeLength = 1000

// Option sets an optional attribute of an envelope built by New.
type Option func(*Envelope)

// WithID sets the envelope id, typically DeterministicID(workflowID, step);
// the default is a random UUID.
func WithID(id string) Option { return func(e *Envelope) { e.ID = id } }

// WithTime sets when the fact happened; it is stored in UTC without a
// monotonic clock reading. The default is the current time.
func WithTime(t time.Time) Option { return func(e *Envelope) { e.Time = t.Round(0).UTC() } }

// WithSubject sets the entity the envelope is about, such as an account id.
func WithSubject(subject string) Option { return func(e *Envelope) { e.Subject = subject } }

// WithCorrelationID sets the correlation id, the saga's workflow id.
func WithCorrelationID(id string) Option { return func(e *Envelope) { e.CorrelationID = id } }

// WithCausationID sets the id of the envelope that caused this one.
func WithCausationID(id string) Option { return func(e *Envelope) { e.CausationID = id } }

// New builds a valid envelope of catalog type typ from source with data at the
// type's current data version. data must be the type's registered payload
// struct (a pointer to it is accepted too) and must validate. The errors wrap
// ErrUnknownType, ErrTypeMismatch, ErrInvalidPayload or ErrInvalidEnvelope.
func New(typ, source string, data Payload, opts ...Option) (Envelope, error) {
	r, ok := lookup(typ)
	if !ok {
		return Envelope{}, fmt.Errorf("new envelope: %w %q", ErrUnknownType, typ)
	}
	p, err := asRegistered(r, data)
	if err != nil {
		return Envelope{}, fmt.Errorf("new envelope %s: %w", typ, err)
	}
	if err := p.Validate(); err != nil {
		return Envelope{}, fmt.Errorf("new envelope %s: %w: %w", typ, ErrInvalidPayload, err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("new envelope %s: %w: %w", typ, ErrInvalidPayload, err)
	}
	e := Envelope{
		SpecVersion:     SpecVersion,
		ID:              newRandomID(),
		Source:          source,
		Type:            typ,
		Time:            time.Now().Round(0).UTC(),
		DataContentType: ContentTypeJSON,
		DataVersion:     r.info.Version,
		Data:            raw,
	}
	for _, opt := range opts {
		opt(&e)
	}
	if err := e.validateAttributes(); err != nil {
		return Envelope{}, fmt.Errorf("new envelope %s: %w: %w", typ, ErrInvalidEnvelope, err)
	}
	return e, nil
}

// asRegistered checks that data is r's payload struct, or a non-nil pointer
// to it, and returns it as a value.
func asRegistered(r *registration, data Payload) (Payload, error) {
	if data == nil {
		return nil, fmt.Errorf("%w: data is nil, want %s", ErrTypeMismatch, r.info.PayloadType)
	}
	rv := reflect.ValueOf(data)
	if rv.Type() == r.info.PayloadType {
		return data, nil
	}
	if rv.Kind() == reflect.Pointer && rv.Type().Elem() == r.info.PayloadType && !rv.IsNil() {
		p, ok := rv.Elem().Interface().(Payload)
		if ok {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: data is %T, want %s", ErrTypeMismatch, data, r.info.PayloadType)
}

// Encode returns the envelope as JSON after checking that Decode would accept
// it, so no producer puts a message on the wire that its consumers must
// dead-letter. Its errors are *DecodeError, like Decode's.
func (e Envelope) Encode() ([]byte, error) {
	if _, _, _, err := e.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, &DecodeError{Kind: ErrMalformed, Type: e.Type, Version: e.DataVersion, Err: err}
	}
	return b, nil
}

// Validate checks the envelope's attributes, its type and version against
// the catalog, and its data against the type's payload; its errors are
// *DecodeError.
func (e Envelope) Validate() error {
	_, _, _, err := e.check()
	return err
}

// RoutingKey returns the key the envelope is published with on the
// "sagas.events" topic exchange: its type.
func (e Envelope) RoutingKey() string { return e.Type }

// Decode parses an encoded envelope, validates its attributes, upcasts data
// of an older version to the type's current version, and decodes and
// validates the payload. The payload is a value of the type's registered
// struct, such as FundsWithdrawn. The returned envelope carries the upcast
// data and the current DataVersion, so DataAs on it needs no further upcast.
//
// Unknown fields in the data are ignored for forward compatibility; anything
// after the JSON value is not. Every error is a *DecodeError whose Kind is
// ErrMalformed, ErrInvalidEnvelope, ErrUnknownType, ErrUnknownVersion or
// ErrInvalidPayload. Decode never panics, whatever the input.
func Decode(b []byte) (Envelope, Payload, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, nil, &DecodeError{Kind: ErrMalformed, Err: err}
	}
	e.Time = e.Time.UTC()
	r, data, p, err := e.check()
	if err != nil {
		return Envelope{}, nil, err
	}
	e.Data = data
	e.DataVersion = r.info.Version
	return e, p, nil
}

// DecodeAs is Decode for a caller that expects one payload type: a payload of
// another type gives a *DecodeError of Kind ErrTypeMismatch.
func DecodeAs[T Payload](b []byte) (Envelope, T, error) {
	var zero T
	e, p, err := Decode(b)
	if err != nil {
		return Envelope{}, zero, err
	}
	t, ok := p.(T)
	if !ok {
		return Envelope{}, zero, &DecodeError{Kind: ErrTypeMismatch, Type: e.Type, Version: e.DataVersion,
			Err: fmt.Errorf("payload is %T, want %T", p, zero)}
	}
	return e, t, nil
}

// DataAs decodes, upcasts and validates the data of an envelope, for example
// one built by New or taken from a store, as payload type T. Its errors are
// *DecodeError, as with Decode.
func DataAs[T Payload](e Envelope) (T, error) {
	var zero T
	r, ok := lookup(e.Type)
	if !ok {
		return zero, &DecodeError{Kind: ErrUnknownType, Type: e.Type, Version: e.DataVersion}
	}
	if want := reflect.TypeFor[T](); want != r.info.PayloadType {
		return zero, &DecodeError{Kind: ErrTypeMismatch, Type: e.Type, Version: e.DataVersion,
			Err: fmt.Errorf("type %s has payload %s, want %s", e.Type, r.info.PayloadType, want)}
	}
	_, p, err := r.payload(e)
	if err != nil {
		return zero, err
	}
	return p.(T), nil
}

// check validates the whole envelope and returns its registration, its data
// upcast to the current version, and its payload.
func (e Envelope) check() (*registration, json.RawMessage, Payload, error) {
	if err := e.validateAttributes(); err != nil {
		return nil, nil, nil, &DecodeError{Kind: ErrInvalidEnvelope, Type: e.Type, Version: e.DataVersion, Err: err}
	}
	r, ok := lookup(e.Type)
	if !ok {
		return nil, nil, nil, &DecodeError{Kind: ErrUnknownType, Type: e.Type, Version: e.DataVersion}
	}
	data, p, err := r.payload(e)
	if err != nil {
		return nil, nil, nil, err
	}
	return r, data, p, nil
}

// payload upcasts, decodes and validates e's data as r's payload, returning
// the upcast data too.
func (r *registration) payload(e Envelope) (json.RawMessage, Payload, error) {
	fail := func(kind, err error) (json.RawMessage, Payload, error) {
		return nil, nil, &DecodeError{Kind: kind, Type: e.Type, Version: e.DataVersion, Err: err}
	}
	if e.DataVersion < 1 || e.DataVersion > r.info.Version {
		return fail(ErrUnknownVersion, fmt.Errorf("known versions are 1 to %d", r.info.Version))
	}
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return fail(ErrInvalidEnvelope, &FieldError{Field: "data", Problem: "required"})
	}
	data, err := r.upcast(e.DataVersion, e.Data)
	if err != nil {
		return fail(ErrInvalidPayload, err)
	}
	p, err := r.decode(data)
	if err != nil {
		return fail(ErrInvalidPayload, err)
	}
	if err := p.Validate(); err != nil {
		return fail(ErrInvalidPayload, err)
	}
	return data, p, nil
}

// validateAttributes checks the CloudEvents attributes, naming the failing
// attribute in each problem.
func (e Envelope) validateAttributes() error {
	var v validator
	if e.SpecVersion != SpecVersion {
		v.addf("specversion", "must be %q, got %q", SpecVersion, e.SpecVersion)
	}
	v.id("id", e.ID)
	v.attribute("source", e.Source, true)
	v.attribute("type", e.Type, true)
	v.attribute("subject", e.Subject, false)
	v.attribute("correlationid", e.CorrelationID, false)
	v.attribute("causationid", e.CausationID, false)
	switch {
	case e.Time.IsZero():
		v.add("time", "required")
	case e.Time.UTC().Year() < 1 || e.Time.UTC().Year() > 9999:
		v.add("time", "year must be between 1 and 9999 in UTC")
	}
	if e.DataContentType != ContentTypeJSON {
		v.addf("datacontenttype", "must be %q, got %q", ContentTypeJSON, e.DataContentType)
	}
	if len(e.Data) == 0 || string(e.Data) == "null" {
		v.add("data", "required")
	}
	return v.err()
}

// attribute checks an envelope text attribute.
func (v *validator) attribute(field, s string, required bool) {
	if s == "" {
		if required {
			v.add(field, "required")
		}
		return
	}
	v.printable(field, s, MaxAttributeLength, false)
}
