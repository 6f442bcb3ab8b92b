package events_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

var fixedTime = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func TestEveryCatalogTypeRoundTrips(t *testing.T) {
	for _, typ := range events.Types() {
		if strings.HasPrefix(typ, "test.") {
			continue // registered by other tests
		}
		t.Run(typ, func(t *testing.T) {
			sample, ok := samples[typ]
			require.True(t, ok, "no sample payload for %s", typ)
			env, err := events.New(typ, "test", sample,
				events.WithID(events.DeterministicID("wf-1", typ)),
				events.WithTime(fixedTime),
				events.WithSubject("subject-1"),
				events.WithCorrelationID("wf-1"),
				events.WithCausationID("cause-1"),
			)
			require.NoError(t, err)

			b, err := env.Encode()
			require.NoError(t, err)
			got, payload, err := events.Decode(b)
			require.NoError(t, err)
			require.Equal(t, env, got)
			require.Equal(t, sample, payload)

			info, ok := events.Lookup(typ)
			require.True(t, ok)
			require.Equal(t, info.Version, got.DataVersion)
			require.Equal(t, info.PayloadType, reflect.TypeOf(payload), "payload is a value of the registered struct")
		})
	}
}

func TestEnvelopeUsesCloudEventsAttributeNames(t *testing.T) {
	env, err := events.New(events.TypeOrderConfirmed, "workflow/order-o-1", events.OrderConfirmed{OrderID: "o-1"},
		events.WithID("id-1"), events.WithTime(fixedTime), events.WithSubject("o-1"),
		events.WithCorrelationID("order-o-1"), events.WithCausationID("cause-1"))
	require.NoError(t, err)
	b, err := env.Encode()
	require.NoError(t, err)
	require.JSONEq(t, `{
		"specversion": "1.0",
		"id": "id-1",
		"source": "workflow/order-o-1",
		"type": "order.confirmed",
		"subject": "o-1",
		"time": "2025-03-14T15:09:26.535897Z",
		"datacontenttype": "application/json",
		"dataversion": 1,
		"correlationid": "order-o-1",
		"causationid": "cause-1",
		"data": {"order_id": "o-1"}
	}`, string(b))
}

func TestNewDefaults(t *testing.T) {
	before := time.Now().UTC()
	env, err := events.New(events.TypeOrderConfirmed, "orders", events.OrderConfirmed{OrderID: "o-1"})
	require.NoError(t, err)
	require.Equal(t, events.SpecVersion, env.SpecVersion)
	require.Equal(t, events.ContentTypeJSON, env.DataContentType)
	require.Equal(t, 1, env.DataVersion)
	require.Len(t, env.ID, 36, "a UUID")
	require.Equal(t, time.UTC, env.Time.Location())
	require.False(t, env.Time.Before(before.Truncate(time.Microsecond)))
	require.Empty(t, env.Subject)
	require.Equal(t, events.TypeOrderConfirmed, env.RoutingKey())

	other, err := events.New(events.TypeOrderConfirmed, "orders", events.OrderConfirmed{OrderID: "o-1"})
	require.NoError(t, err)
	require.NotEqual(t, env.ID, other.ID, "default ids are random")
}

func TestNewWithTimeStoresUTCWithoutMonotonicReading(t *testing.T) {
	local := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	env, err := events.New(events.TypeOrderConfirmed, "orders", events.OrderConfirmed{OrderID: "o-1"}, events.WithTime(local))
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 1, 2, 2, 4, 5, 0, time.UTC), env.Time)

	now := time.Now()
	env, err = events.New(events.TypeOrderConfirmed, "orders", events.OrderConfirmed{OrderID: "o-1"}, events.WithTime(now))
	require.NoError(t, err)
	b, err := env.Encode()
	require.NoError(t, err)
	got, _, err := events.Decode(b)
	require.NoError(t, err)
	require.Equal(t, env, got, "a time.Now() survives the round trip exactly")
}

func TestNewAcceptsPointerToPayload(t *testing.T) {
	env, err := events.New(events.TypeOrderConfirmed, "orders", &events.OrderConfirmed{OrderID: "o-1"})
	require.NoError(t, err)
	p, err := events.DataAs[events.OrderConfirmed](env)
	require.NoError(t, err)
	require.Equal(t, "o-1", p.OrderID)
}

func TestNewRejects(t *testing.T) {
	valid := events.OrderConfirmed{OrderID: "o-1"}
	tests := []struct {
		name   string
		typ    string
		source string
		data   events.Payload
		opts   []events.Option
		want   error
		field  string
	}{
		{name: "unknown type", typ: "order.shipped", source: "orders", data: valid, want: events.ErrUnknownType},
		{name: "payload of another type", typ: events.TypeOrderConfirmed, source: "orders", data: events.OrderCancelled{OrderID: "o-1", Reason: "x"}, want: events.ErrTypeMismatch},
		{name: "nil payload", typ: events.TypeOrderConfirmed, source: "orders", data: nil, want: events.ErrTypeMismatch},
		{name: "nil pointer payload", typ: events.TypeOrderConfirmed, source: "orders", data: (*events.OrderConfirmed)(nil), want: events.ErrTypeMismatch},
		{name: "invalid payload", typ: events.TypeOrderConfirmed, source: "orders", data: events.OrderConfirmed{}, want: events.ErrInvalidPayload, field: "order_id"},
		{name: "empty source", typ: events.TypeOrderConfirmed, source: "", data: valid, want: events.ErrInvalidEnvelope, field: "source"},
		{name: "empty id", typ: events.TypeOrderConfirmed, source: "orders", data: valid, opts: []events.Option{events.WithID("")}, want: events.ErrInvalidEnvelope, field: "id"},
		{name: "id too long", typ: events.TypeOrderConfirmed, source: "orders", data: valid, opts: []events.Option{events.WithID(strings.Repeat("x", events.MaxIDLength+1))}, want: events.ErrInvalidEnvelope, field: "id"},
		{name: "zero time", typ: events.TypeOrderConfirmed, source: "orders", data: valid, opts: []events.Option{events.WithTime(time.Time{})}, want: events.ErrInvalidEnvelope, field: "time"},
		{name: "control character in subject", typ: events.TypeOrderConfirmed, source: "orders", data: valid, opts: []events.Option{events.WithSubject("o\x1b[31m")}, want: events.ErrInvalidEnvelope, field: "subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.New(tt.typ, tt.source, tt.data, tt.opts...)
			require.ErrorIs(t, err, tt.want)
			if tt.field != "" {
				var fe *events.FieldError
				require.True(t, errors.As(err, &fe), "error %v names no field", err)
				require.Equal(t, tt.field, fe.Field)
			}
		})
	}
}

func TestEncodeRejectsInvalidEnvelope(t *testing.T) {
	env, err := events.New(events.TypeOrderConfirmed, "orders", events.OrderConfirmed{OrderID: "o-1"})
	require.NoError(t, err)
	tests := []struct {
		name   string
		mutate func(*events.Envelope)
		want   error
	}{
		{name: "wrong specversion", mutate: func(e *events.Envelope) { e.SpecVersion = "0.3" }, want: events.ErrInvalidEnvelope},
		{name: "unknown type", mutate: func(e *events.Envelope) { e.Type = "order.shipped" }, want: events.ErrUnknownType},
		{name: "future version", mutate: func(e *events.Envelope) { e.DataVersion = 2 }, want: events.ErrUnknownVersion},
		{name: "data of the wrong shape", mutate: func(e *events.Envelope) { e.Data = json.RawMessage(`{"order_id":7}`) }, want: events.ErrInvalidPayload},
		{name: "no data", mutate: func(e *events.Envelope) { e.Data = nil }, want: events.ErrInvalidEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env
			tt.mutate(&e)
			_, err := e.Encode()
			require.ErrorIs(t, err, tt.want)
			require.ErrorIs(t, e.Validate(), tt.want)
		})
	}
	require.NoError(t, env.Validate())
}

func TestTypesIsSortedAndHoldsTheCatalog(t *testing.T) {
	types := events.Types()
	require.True(t, sort.StringsAreSorted(types))
	for typ, kind := range catalogTypes {
		require.Contains(t, types, typ)
		info, ok := events.Lookup(typ)
		require.True(t, ok)
		require.Equal(t, typ, info.Type)
		require.Equal(t, kind, info.Kind, typ)
		require.Equal(t, kind == events.KindEvent, events.IsEvent(typ), typ)
		require.Equal(t, kind == events.KindCommand, events.IsCommand(typ), typ)
	}
}

func TestLookupUnknownType(t *testing.T) {
	_, ok := events.Lookup("nope")
	require.False(t, ok)
	require.False(t, events.IsEvent("nope"))
	require.False(t, events.IsCommand("nope"))
}

func TestOrderPlacedIsAtVersion2(t *testing.T) {
	info, ok := events.Lookup(events.TypeOrderPlaced)
	require.True(t, ok)
	require.Equal(t, 2, info.Version)
}
