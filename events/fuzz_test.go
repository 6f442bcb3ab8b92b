package events_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"testing"

	"github.com/sagaflow/sagaflow/events"
)

// decodeKinds are the kinds Decode may report.
var decodeKinds = []error{
	events.ErrMalformed, events.ErrInvalidEnvelope, events.ErrUnknownType,
	events.ErrUnknownVersion, events.ErrInvalidPayload,
}

// FuzzDecode checks that Decode never panics, that every failure is a
// *DecodeError of exactly one kind, and that whatever it accepts encodes and
// decodes again to the same envelope and payload. Its seeds (below and in
// testdata/fuzz/FuzzDecode) run with every `go test`.
func FuzzDecode(f *testing.F) {
	types := make([]string, 0, len(samples))
	for typ := range samples {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		env, err := events.New(typ, "fuzz", samples[typ],
			events.WithID(events.DeterministicID("fuzz", typ)), events.WithTime(fixedTime),
			events.WithSubject("s"), events.WithCorrelationID("c"), events.WithCausationID("k"))
		if err != nil {
			f.Fatalf("seed %s: %v", typ, err)
		}
		b, err := env.Encode()
		if err != nil {
			f.Fatalf("seed %s: %v", typ, err)
		}
		f.Add(b)
	}
	f.Add(rawEnvelope(f, map[string]any{"type": "order.placed", "dataversion": 1, "data": json.RawMessage(orderPlacedV1)}))
	f.Add(rawEnvelope(f, map[string]any{"type": "order.placed", "dataversion": 1, "data": json.RawMessage(`{"amount":null}`)}))
	f.Add(rawEnvelope(f, map[string]any{"type": "test.widget", "dataversion": 1, "data": json.RawMessage(`{"name":"w"}`)}))
	f.Add(rawEnvelope(f, map[string]any{"dataversion": 2}))
	f.Add(rawEnvelope(f, map[string]any{"type": "nope"}))
	f.Add(rawEnvelope(f, map[string]any{"data": json.RawMessage("null")}))
	f.Add(rawEnvelope(f, map[string]any{"time": "9999-12-31T23:59:59-23:59"}))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"specversion":"1.0"} trailing`))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`{"data":{"order_id":"\ud800"}}`))

	f.Fuzz(func(t *testing.T, b []byte) {
		env, payload, err := events.Decode(b)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError: %v", err, err)
			}
			matched := 0
			for _, k := range decodeKinds {
				if errors.Is(err, k) {
					matched++
				}
			}
			if matched != 1 || errors.Is(err, events.ErrTypeMismatch) {
				t.Fatalf("error matches %d kinds: %v", matched, err)
			}
			if payload != nil {
				t.Fatalf("payload %#v returned with error %v", payload, err)
			}
			return
		}
		if payload == nil {
			t.Fatal("no payload and no error")
		}
		if err := payload.Validate(); err != nil {
			t.Fatalf("accepted an invalid payload: %v", err)
		}
		info, ok := events.Lookup(env.Type)
		if !ok || reflect.TypeOf(payload) != info.PayloadType || env.DataVersion != info.Version {
			t.Fatalf("payload %T at version %d does not match %+v", payload, env.DataVersion, info)
		}
		again, err := env.Encode()
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		env2, payload2, err := events.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v\n%s", err, again)
		}
		env.Data, env2.Data = nil, nil
		if !reflect.DeepEqual(env, env2) {
			t.Fatalf("envelope changed in a round trip:\n%#v\n%#v", env, env2)
		}
		p1, err1 := json.Marshal(payload)
		p2, err2 := json.Marshal(payload2)
		if err1 != nil || err2 != nil || string(p1) != string(p2) {
			t.Fatalf("payload changed in a round trip:\n%s\n%s", p1, p2)
		}
	})
}
