package events_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

// rawEnvelope returns a valid encoded order.confirmed envelope with the given
// attributes replaced; a nil value removes the attribute.
func rawEnvelope(t testing.TB, overrides map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"specversion":     "1.0",
		"id":              "id-1",
		"source":          "orders",
		"type":            "order.confirmed",
		"time":            "2025-03-14T15:09:26Z",
		"datacontenttype": "application/json",
		"dataversion":     1,
		"data":            json.RawMessage(`{"order_id":"o-1"}`),
	}
	for k, v := range overrides {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// orderPlacedV1 is order.placed data in its version 1 shape.
const orderPlacedV1 = `{"order_id":"o-1","customer":"alice","merchant_id":"shop",` +
	`"lines":[{"sku":"apple","quantity":3,"unit_price":150},{"sku":"pear","quantity":2,"unit_price":200}],` +
	`"amount":{"amount":850,"currency":"EUR"}}`

var allKinds = []error{
	events.ErrMalformed, events.ErrInvalidEnvelope, events.ErrUnknownType,
	events.ErrUnknownVersion, events.ErrInvalidPayload, events.ErrTypeMismatch,
}

// requireKind checks that err is a *DecodeError of kind want and of no other.
func requireKind(t testing.TB, err error, want error) *events.DecodeError {
	t.Helper()
	require.Error(t, err)
	var de *events.DecodeError
	require.True(t, errors.As(err, &de), "%T is not a *DecodeError: %v", err, err)
	require.Equal(t, want, de.Kind)
	for _, k := range allKinds {
		require.Equal(t, k == want, errors.Is(err, k), "errors.Is(%v, %v)", err, k)
	}
	return de
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  error
		field string // the first field named, if any
	}{
		{name: "empty input", input: nil, want: events.ErrMalformed},
		{name: "not JSON", input: []byte("hello"), want: events.ErrMalformed},
		{name: "truncated JSON", input: []byte(`{"specversion":"1.0"`), want: events.ErrMalformed},
		{name: "JSON array", input: []byte(`[1,2]`), want: events.ErrMalformed},
		{name: "trailing garbage", input: append(rawEnvelope(t, nil), []byte(" x")...), want: events.ErrMalformed},
		{name: "second value after the envelope", input: append(rawEnvelope(t, nil), []byte("{}")...), want: events.ErrMalformed},
		{name: "time not a time", input: rawEnvelope(t, map[string]any{"time": "yesterday"}), want: events.ErrMalformed},
		{name: "dataversion not an integer", input: rawEnvelope(t, map[string]any{"dataversion": 1.5}), want: events.ErrMalformed},
		{name: "id not a string", input: rawEnvelope(t, map[string]any{"id": 7}), want: events.ErrMalformed},

		{name: "wrong specversion", input: rawEnvelope(t, map[string]any{"specversion": "0.3"}), want: events.ErrInvalidEnvelope, field: "specversion"},
		{name: "missing specversion", input: rawEnvelope(t, map[string]any{"specversion": nil}), want: events.ErrInvalidEnvelope, field: "specversion"},
		{name: "empty id", input: rawEnvelope(t, map[string]any{"id": ""}), want: events.ErrInvalidEnvelope, field: "id"},
		{name: "empty source", input: rawEnvelope(t, map[string]any{"source": ""}), want: events.ErrInvalidEnvelope, field: "source"},
		{name: "empty type", input: rawEnvelope(t, map[string]any{"type": ""}), want: events.ErrInvalidEnvelope, field: "type"},
		{name: "missing time", input: rawEnvelope(t, map[string]any{"time": nil}), want: events.ErrInvalidEnvelope, field: "time"},
		{name: "zero time", input: rawEnvelope(t, map[string]any{"time": "0001-01-01T00:00:00Z"}), want: events.ErrInvalidEnvelope, field: "time"},
		{name: "time before year 1 in UTC", input: rawEnvelope(t, map[string]any{"time": "0001-01-01T00:00:00+01:00"}), want: events.ErrInvalidEnvelope, field: "time"},
		{name: "time after year 9999 in UTC", input: rawEnvelope(t, map[string]any{"time": "9999-12-31T23:59:59-01:00"}), want: events.ErrInvalidEnvelope, field: "time"},
		{name: "other content type", input: rawEnvelope(t, map[string]any{"datacontenttype": "application/xml"}), want: events.ErrInvalidEnvelope, field: "datacontenttype"},
		{name: "missing content type", input: rawEnvelope(t, map[string]any{"datacontenttype": nil}), want: events.ErrInvalidEnvelope, field: "datacontenttype"},
		{name: "null data", input: rawEnvelope(t, map[string]any{"data": json.RawMessage("null")}), want: events.ErrInvalidEnvelope, field: "data"},
		{name: "missing data", input: rawEnvelope(t, map[string]any{"data": nil}), want: events.ErrInvalidEnvelope, field: "data"},

		{name: "unknown type", input: rawEnvelope(t, map[string]any{"type": "order.shipped"}), want: events.ErrUnknownType},

		{name: "version above current", input: rawEnvelope(t, map[string]any{"dataversion": 2}), want: events.ErrUnknownVersion},
		{name: "version zero", input: rawEnvelope(t, map[string]any{"dataversion": 0}), want: events.ErrUnknownVersion},
		{name: "missing version", input: rawEnvelope(t, map[string]any{"dataversion": nil}), want: events.ErrUnknownVersion},
		{name: "negative version", input: rawEnvelope(t, map[string]any{"dataversion": -1}), want: events.ErrUnknownVersion},

		{name: "data fails validation", input: rawEnvelope(t, map[string]any{"data": json.RawMessage(`{"order_id":""}`)}), want: events.ErrInvalidPayload, field: "order_id"},
		{name: "data field of the wrong JSON type", input: rawEnvelope(t, map[string]any{"data": json.RawMessage(`{"order_id":1}`)}), want: events.ErrInvalidPayload},
		{name: "data is an array", input: rawEnvelope(t, map[string]any{"data": json.RawMessage(`[]`)}), want: events.ErrInvalidPayload},
		{name: "data is a string", input: rawEnvelope(t, map[string]any{"data": "o-1"}), want: events.ErrInvalidPayload},
		{name: "integer overflow in data", input: rawEnvelope(t, map[string]any{"type": "inventory.restock", "data": json.RawMessage(`{"sku":"a","quantity":99999999999999999999}`)}), want: events.ErrInvalidPayload},
		{name: "v1 order placed that the upcaster refuses", input: rawEnvelope(t, map[string]any{"type": "order.placed", "dataversion": 1, "data": json.RawMessage(`{"order_id":"o-1","amount":"850 EUR"}`)}), want: events.ErrInvalidPayload},
		{name: "v1 order placed without amount", input: rawEnvelope(t, map[string]any{"type": "order.placed", "dataversion": 1, "data": json.RawMessage(`{"order_id":"o-1","customer":"alice","merchant_id":"shop","lines":[{"sku":"a","quantity":1,"unit_price":1}]}`)}), want: events.ErrInvalidPayload, field: "currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, payload, err := events.Decode(tt.input)
			requireKind(t, err, tt.want)
			require.Zero(t, env)
			require.Nil(t, payload)
			if tt.field != "" {
				var fe *events.FieldError
				require.True(t, errors.As(err, &fe), "%v names no field", err)
				require.Equal(t, tt.field, fe.Field)
			}
		})
	}
}

func TestDecodeErrorNamesTypeAndVersion(t *testing.T) {
	_, _, err := events.Decode(rawEnvelope(t, map[string]any{"dataversion": 9}))
	de := requireKind(t, err, events.ErrUnknownVersion)
	require.Equal(t, "order.confirmed", de.Type)
	require.Equal(t, 9, de.Version)
	require.Equal(t, `decode envelope: unknown data version (type "order.confirmed", version 9): known versions are 1 to 1`, err.Error())
}

func TestDecodeToleratesUnknownFields(t *testing.T) {
	b := rawEnvelope(t, map[string]any{
		"data":          json.RawMessage(`{"order_id":"o-1","gift_wrap":true}`),
		"traceparent":   "00-abc-def-01",
		"correlationid": "order-o-1",
	})
	env, payload, err := events.Decode(b)
	require.NoError(t, err)
	require.Equal(t, events.OrderConfirmed{OrderID: "o-1"}, payload)
	require.Equal(t, "order-o-1", env.CorrelationID)
}

func TestDecodeNormalisesTimeToUTC(t *testing.T) {
	env, _, err := events.Decode(rawEnvelope(t, map[string]any{"time": "2025-03-14T16:09:26+01:00"}))
	require.NoError(t, err)
	require.Equal(t, "2025-03-14T15:09:26Z", env.Time.Format("2006-01-02T15:04:05Z07:00"))
}

func TestDecodeUpcastsOrderPlacedV1ToV2(t *testing.T) {
	b := rawEnvelope(t, map[string]any{"type": "order.placed", "dataversion": 1, "data": json.RawMessage(orderPlacedV1)})
	env, payload, err := events.Decode(b)
	require.NoError(t, err)
	require.Equal(t, samples[events.TypeOrderPlaced], payload)
	require.Equal(t, 2, env.DataVersion, "the decoded envelope is at the current version")

	again, err := events.DataAs[events.OrderPlaced](env)
	require.NoError(t, err)
	require.Equal(t, payload, again)

	reencoded, err := env.Encode()
	require.NoError(t, err)
	_, payload2, err := events.Decode(reencoded)
	require.NoError(t, err)
	require.Equal(t, payload, payload2)
}

func TestDataAsUpcastsAStoredV1Envelope(t *testing.T) {
	env := events.Envelope{
		SpecVersion: events.SpecVersion, ID: "id-1", Source: "orders", Type: events.TypeOrderPlaced,
		Time: fixedTime, DataContentType: events.ContentTypeJSON, DataVersion: 1, Data: json.RawMessage(orderPlacedV1),
	}
	p, err := events.DataAs[events.OrderPlaced](env)
	require.NoError(t, err)
	require.Equal(t, samples[events.TypeOrderPlaced], p)
}

func TestUpcastOrderPlacedV1(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "renames customer and splits amount", in: orderPlacedV1,
			want: `{"order_id":"o-1","customer_id":"alice","merchant_id":"shop","lines":[{"sku":"apple","quantity":3,"unit_price":150},{"sku":"pear","quantity":2,"unit_price":200}],"total":850,"currency":"EUR"}`},
		{name: "keeps unknown fields", in: `{"customer":"a","note":"x"}`, want: `{"customer_id":"a","note":"x"}`},
		{name: "version 2 names win", in: `{"customer":"old","customer_id":"new","amount":{"amount":1,"currency":"USD"},"total":2,"currency":"EUR"}`,
			want: `{"customer_id":"new","total":2,"currency":"EUR"}`},
		{name: "not an object", in: `[1]`, wantErr: true},
		{name: "null", in: `null`, wantErr: true},
		{name: "amount not an object", in: `{"amount":5}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := events.UpcastOrderPlacedV1(json.RawMessage(tt.in))
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(out))
		})
	}
}

func TestDecodeAs(t *testing.T) {
	b := rawEnvelope(t, nil)
	env, p, err := events.DecodeAs[events.OrderConfirmed](b)
	require.NoError(t, err)
	require.Equal(t, "o-1", p.OrderID)
	require.Equal(t, "id-1", env.ID)

	_, wrong, err := events.DecodeAs[events.OrderCancelled](b)
	requireKind(t, err, events.ErrTypeMismatch)
	require.Zero(t, wrong)

	_, _, err = events.DecodeAs[events.OrderConfirmed]([]byte("{"))
	requireKind(t, err, events.ErrMalformed)
}

func TestDataAs(t *testing.T) {
	env, err := events.New(events.TypeFundsWithdrawn, "ledger", samples[events.TypeFundsWithdrawn])
	require.NoError(t, err)
	p, err := events.DataAs[events.FundsWithdrawn](env)
	require.NoError(t, err)
	require.Equal(t, samples[events.TypeFundsWithdrawn], p)

	tests := []struct {
		name   string
		mutate func(*events.Envelope)
		want   error
	}{
		{name: "unknown type", mutate: func(e *events.Envelope) { e.Type = "funds.stolen" }, want: events.ErrUnknownType},
		{name: "unknown version", mutate: func(e *events.Envelope) { e.DataVersion = 3 }, want: events.ErrUnknownVersion},
		{name: "invalid data", mutate: func(e *events.Envelope) { e.Data = json.RawMessage(`{"account_id":"a"}`) }, want: events.ErrInvalidPayload},
		{name: "null data", mutate: func(e *events.Envelope) { e.Data = json.RawMessage(`null`) }, want: events.ErrInvalidEnvelope},
		{name: "other type's envelope", mutate: func(e *events.Envelope) { e.Type = events.TypeFundsDeposited }, want: events.ErrTypeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env
			tt.mutate(&e)
			_, err := events.DataAs[events.FundsWithdrawn](e)
			requireKind(t, err, tt.want)
		})
	}
}
