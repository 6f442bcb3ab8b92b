package events

import (
	"errors"
	"fmt"
	"strings"
)

// The sentinels below classify every error Decode, DecodeAs, DataAs and New
// return; test for them with errors.Is. Exactly one of them matches a given
// *DecodeError, so a consumer can tell a poison message (malformed, invalid)
// from one it merely does not understand yet (unknown type or version).
var (
	// ErrMalformed reports bytes that are not a JSON envelope.
	ErrMalformed = errors.New("malformed envelope")
	// ErrInvalidEnvelope reports an envelope whose attributes break the rules:
	// wrong specversion, empty id or source, zero time, another content type,
	// missing data.
	ErrInvalidEnvelope = errors.New("invalid envelope")
	// ErrUnknownType reports a type that is not in the catalog.
	ErrUnknownType = errors.New("unknown type")
	// ErrUnknownVersion reports a data version the catalog cannot read: newer
	// than the type's current version, or below 1.
	ErrUnknownVersion = errors.New("unknown data version")
	// ErrInvalidPayload reports data that does not decode into its type's
	// payload struct, that an upcaster refused, or that fails validation.
	ErrInvalidPayload = errors.New("invalid payload")
	// ErrTypeMismatch reports a payload asked for as a Go type other than the
	// one its catalog type is registered with (DecodeAs, DataAs, New).
	ErrTypeMismatch = errors.New("payload type mismatch")
)

// DecodeError is the error Decode, DecodeAs and DataAs return. It matches its
// Kind with errors.Is and exposes the underlying cause (often a joined set of
// *FieldError) to errors.As.
type DecodeError struct {
	// Kind is one of ErrMalformed, ErrInvalidEnvelope, ErrUnknownType,
	// ErrUnknownVersion, ErrInvalidPayload or ErrTypeMismatch.
	Kind error
	// Type is the envelope's type when it was read, else "".
	Type string
	// Version is the envelope's data version when it was read, else 0.
	Version int
	// Err is the cause, nil when Kind says everything.
	Err error
}

// Error describes the failure with the type and version it concerns.
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("decode envelope: ")
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("failed")
	}
	if e.Type != "" {
		fmt.Fprintf(&b, " (type %q", e.Type)
		if e.Version != 0 {
			fmt.Fprintf(&b, ", version %d", e.Version)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the Kind and the cause, so errors.Is finds the sentinel and
// errors.As finds a *FieldError inside the cause.
func (e *DecodeError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// FieldError is one validation problem, naming the offending field by its
// JSON path, for example "lines[2].quantity: must be positive". Validate
// methods return one *FieldError or several joined with errors.Join.
type FieldError struct {
	// Field is the JSON path of the field, such as "amount.currency".
	Field string
	// Problem says what is wrong, such as "must be positive".
	Problem string
}

// Error returns "field: problem".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// FieldErrors returns every *FieldError inside err, in order, looking through
// wrapping and errors.Join; it returns nil when there is none.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}
