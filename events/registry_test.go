package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

// widget is a test-only type at version 3: version 1 had "name", version 2
// renamed it "title", version 3 added "size" (defaulting to 1).
type widget struct {
	Title string `json:"title"`
	Size  int    `json:"size"`
}

func (w widget) Validate() error {
	if w.Title == "" {
		return &events.FieldError{Field: "title", Problem: "required"}
	}
	return nil
}

func widgetV1ToV2(data json.RawMessage) (json.RawMessage, error) {
	if bytes.Contains(data, []byte("refuse")) {
		return nil, errors.New("refused")
	}
	return bytes.Replace(data, []byte(`"name"`), []byte(`"title"`), 1), nil
}

func widgetV2ToV3(data json.RawMessage) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if _, ok := m["size"]; !ok {
		m["size"] = 1
	}
	return json.Marshal(m)
}

func init() {
	events.Register[widget](events.KindEvent, "test.widget", 3, widgetV1ToV2, widgetV2ToV3)
}

func TestRegisteredTypeIsUsable(t *testing.T) {
	info, ok := events.Lookup("test.widget")
	require.True(t, ok)
	require.Equal(t, 3, info.Version)
	require.Equal(t, events.KindEvent, info.Kind)
	require.True(t, events.IsEvent("test.widget"))
	require.Contains(t, events.Types(), "test.widget")

	env, err := events.New("test.widget", "test", widget{Title: "w", Size: 2})
	require.NoError(t, err)
	require.Equal(t, 3, env.DataVersion)
}

func TestUpcastersChainInOrder(t *testing.T) {
	tests := []struct {
		name    string
		version int
		data    string
		want    widget
	}{
		{name: "from version 1", version: 1, data: `{"name":"w"}`, want: widget{Title: "w", Size: 1}},
		{name: "from version 2", version: 2, data: `{"title":"w"}`, want: widget{Title: "w", Size: 1}},
		{name: "current version", version: 3, data: `{"title":"w","size":5}`, want: widget{Title: "w", Size: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := rawEnvelope(t, map[string]any{"type": "test.widget", "dataversion": tt.version, "data": json.RawMessage(tt.data)})
			env, p, err := events.DecodeAs[widget](b)
			require.NoError(t, err)
			require.Equal(t, tt.want, p)
			require.Equal(t, 3, env.DataVersion)
		})
	}
}

func TestUpcasterErrorIsInvalidPayload(t *testing.T) {
	b := rawEnvelope(t, map[string]any{"type": "test.widget", "dataversion": 1, "data": json.RawMessage(`{"name":"refuse"}`)})
	_, _, err := events.Decode(b)
	requireKind(t, err, events.ErrInvalidPayload)
	require.ErrorContains(t, err, "upcast version 1 to 2: refused")
}

func TestRegisterPanicsOnMisuse(t *testing.T) {
	noop := func(d json.RawMessage) (json.RawMessage, error) { return d, nil }
	tests := []struct {
		name     string
		register func()
	}{
		{name: "duplicate type", register: func() { events.Register[events.OrderConfirmed](events.KindEvent, events.TypeOrderConfirmed, 1) }},
		{name: "empty name", register: func() { events.Register[widget](events.KindEvent, "", 1) }},
		{name: "invalid kind", register: func() { events.Register[widget](events.Kind(0), "test.kind", 1) }},
		{name: "version zero", register: func() { events.Register[widget](events.KindEvent, "test.v0", 0) }},
		{name: "missing upcaster", register: func() { events.Register[widget](events.KindEvent, "test.v2", 2) }},
		{name: "extra upcaster", register: func() { events.Register[widget](events.KindEvent, "test.v1", 1, noop) }},
		{name: "nil upcaster", register: func() { events.Register[widget](events.KindEvent, "test.nil", 2, nil) }},
		{name: "pointer payload", register: func() { events.Register[*widget](events.KindEvent, "test.ptr", 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Panics(t, tt.register)
		})
	}
	for _, typ := range []string{"test.kind", "test.v0", "test.v2", "test.v1", "test.nil", "test.ptr"} {
		_, ok := events.Lookup(typ)
		require.False(t, ok, "%s must not be registered after a panic", typ)
	}
}

func TestKindString(t *testing.T) {
	require.Equal(t, "event", events.KindEvent.String())
	require.Equal(t, "command", events.KindCommand.String())
	require.Equal(t, "reply", events.KindReply.String())
	require.Equal(t, "Kind(9)", events.Kind(9).String())
}
