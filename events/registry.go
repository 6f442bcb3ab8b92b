package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
)

// Payload is the data of an envelope: a struct value that validates itself.
// Every catalog type is registered with one Payload struct type.
type Payload interface {
	Validate() error
}

// Kind says what role a catalog type plays.
type Kind int

// The kinds of catalog types.
const (
	// KindEvent is a past-tense fact published on "sagas.events".
	KindEvent Kind = iota + 1
	// KindCommand is an imperative instruction sent to one service's queue.
	KindCommand
	// KindReply is the answer to a command.
	KindReply
)

// String returns "event", "command" or "reply".
func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindCommand:
		return "command"
	case KindReply:
		return "reply"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Upcaster turns the JSON data of one version of a type into the JSON data of
// the next version (n to n+1). It must not panic on any input and should keep
// fields it does not know, for forward compatibility.
type Upcaster func(json.RawMessage) (json.RawMessage, error)

// TypeInfo describes one registered catalog type.
type TypeInfo struct {
	// Type is the type name, such as "funds.withdrawn".
	Type string
	// Kind is event, command or reply.
	Kind Kind
	// Version is the current data version: New writes it, Decode upcasts to it.
	Version int
	// PayloadType is the Go struct type of the current version's data.
	PayloadType reflect.Type
}

// registration is a TypeInfo plus what decoding needs.
type registration struct {
	info TypeInfo
	// upcasters[i] upcasts version i+1 to version i+2.
	upcasters []Upcaster
	// decode unmarshals current-version data into a payload value.
	decode func(json.RawMessage) (Payload, error)
}

var catalog = struct {
	sync.RWMutex
	types map[string]*registration
}{types: map[string]*registration{}}

// Register adds type typ of kind k to the catalog with payload struct T at
// current data version version, and one upcaster for each older version:
// upcasters[0] turns version 1 data into version 2, upcasters[1] version 2
// into 3, and so on, so len(upcasters) must be version-1.
//
// Register is meant for package initialisation, like http.Handle: it panics
// on a duplicate type, an empty name, a version below 1, a wrong number of
// upcasters, a nil upcaster, or a T that is not a struct type.
func Register[T Payload](k Kind, typ string, version int, upcasters ...Upcaster) {
	rt := reflect.TypeFor[T]()
	switch {
	case typ == "":
		panic("events: Register with an empty type name")
	case k != KindEvent && k != KindCommand && k != KindReply:
		panic(fmt.Sprintf("events: Register %q with invalid kind %d", typ, int(k)))
	case version < 1:
		panic(fmt.Sprintf("events: Register %q with version %d, want at least 1", typ, version))
	case len(upcasters) != version-1:
		panic(fmt.Sprintf("events: Register %q at version %d needs %d upcasters, got %d", typ, version, version-1, len(upcasters)))
	case rt.Kind() != reflect.Struct:
		panic(fmt.Sprintf("events: Register %q with payload type %s, want a struct type", typ, rt))
	}
	for i, u := range upcasters {
		if u == nil {
			panic(fmt.Sprintf("events: Register %q with a nil upcaster from version %d", typ, i+1))
		}
	}
	r := &registration{
		info:      TypeInfo{Type: typ, Kind: k, Version: version, PayloadType: rt},
		upcasters: slices.Clone(upcasters),
		decode: func(data json.RawMessage) (Payload, error) {
			var p T
			if err := json.Unmarshal(data, &p); err != nil {
				return nil, err
			}
			return p, nil
		},
	}
	catalog.Lock()
	defer catalog.Unlock()
	if _, dup := catalog.types[typ]; dup {
		panic(fmt.Sprintf("events: Register %q twice", typ))
	}
	catalog.types[typ] = r
}

func lookup(typ string) (*registration, bool) {
	catalog.RLock()
	defer catalog.RUnlock()
	r, ok := catalog.types[typ]
	return r, ok
}

// Lookup returns what the catalog knows of typ, with its current version.
func Lookup(typ string) (TypeInfo, bool) {
	r, ok := lookup(typ)
	if !ok {
		return TypeInfo{}, false
	}
	return r.info, true
}

// Types returns every registered type name, sorted.
func Types() []string {
	catalog.RLock()
	defer catalog.RUnlock()
	out := make([]string, 0, len(catalog.types))
	for t := range catalog.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// IsEvent reports whether typ is a registered event type.
func IsEvent(typ string) bool {
	info, ok := Lookup(typ)
	return ok && info.Kind == KindEvent
}

// IsCommand reports whether typ is a registered command type.
func IsCommand(typ string) bool {
	info, ok := Lookup(typ)
	return ok && info.Kind == KindCommand
}

// upcast brings data of version from up to the registration's current
// version. The caller has checked 1 <= from <= current.
func (r *registration) upcast(from int, data json.RawMessage) (json.RawMessage, error) {
	for v := from; v < r.info.Version; v++ {
		out, err := r.upcasters[v-1](data)
		if err != nil {
			return nil, fmt.Errorf("upcast version %d to %d: %w", v, v+1, err)
		}
		data = out
	}
	return data, nil
}

// Upcasters returns the upcasters of typ in version order: the first turns
// version 1 data into version 2. It is nil for an unknown type or one at
// version 1.
func Upcasters(typ string) []Upcaster {
	r, ok := lookup(typ)
	if !ok {
		return nil
	}
	return slices.Clone(r.upcasters)
}
