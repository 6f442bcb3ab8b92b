package replay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
)

// History is one workflow history to replay.
type History struct {
	// Source names where it came from: a file path, or "" for a server.
	Source string
	// WorkflowID, RunID and WorkflowType identify the execution; the ids
	// are empty when a file's history does not record them.
	WorkflowID, RunID, WorkflowType string
	// Events are the history's events, oldest first.
	Events *historypb.History
}

// NotAHistoryError is input that is not a workflow history.
type NotAHistoryError struct {
	// Reason says what is wrong with it.
	Reason string
}

func (e *NotAHistoryError) Error() string { return "not a workflow history: " + e.Reason }

// ReadFile reads the history in the JSON file path (see Parse).
func ReadFile(path string) (*History, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	h, err := Parse(data)
	if err != nil {
		return nil, err
	}
	h.Source = path
	return h, nil
}

// Parse reads a history from JSON in any of the forms the Temporal tools
// write:
//   - the Temporal CLI's `temporal workflow show --output json`: protojson
//     {"events": [...]} with enums such as "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED";
//   - the Web UI's "Download" (encoded): {"events": [...]} as its HTTP API
//     returns them, the same protojson (checked with the UI 2.42 of CLI
//     v1.5.1); older UI servers wrote shorthand enums such as
//     "WorkflowExecutionStarted", which are read too;
//   - the Web UI's decoded and readable downloads, where payloads (all of
//     them, or only memo, header and search attributes) are
//     {"metadata": {"encoding": "json/plain"}, "data": <the JSON value>};
//   - a bare array of events (what the Web UI's import also accepts).
//
// Events are sorted by event id, so a history listed newest first works too.
func Parse(data []byte) (*History, error) {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return nil, &NotAHistoryError{"the file is empty"}
	case data[0] == '[':
		data = append(append([]byte(`{"events":`), data...), '}')
	case data[0] != '{':
		return nil, &NotAHistoryError{"want a JSON object with \"events\" or an array of events"}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, &NotAHistoryError{"invalid JSON: " + err.Error()}
	}
	if _, ok := top["events"]; !ok {
		return nil, &NotAHistoryError{"no \"events\" in the JSON object"}
	}
	opts := temporalproto.CustomJSONUnmarshalOptions{DiscardUnknown: true}
	hist := &historypb.History{}
	if err := opts.Unmarshal(data, hist); err != nil {
		// The Web UI's decoded and readable downloads hold parsed payloads.
		normalized, nerr := encodeParsedPayloads(data)
		hist = &historypb.History{}
		if nerr != nil || opts.Unmarshal(normalized, hist) != nil {
			return nil, &NotAHistoryError{oneLine(err.Error())}
		}
	}
	return fromEvents(hist)
}

func fromEvents(hist *historypb.History) (*History, error) {
	if len(hist.GetEvents()) == 0 {
		return nil, &NotAHistoryError{"it has no events"}
	}
	slices.SortStableFunc(hist.Events, func(a, b *historypb.HistoryEvent) int {
		return int(a.GetEventId() - b.GetEventId())
	})
	first := hist.Events[0]
	attrs := first.GetWorkflowExecutionStartedEventAttributes()
	if first.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED || attrs == nil {
		return nil, &NotAHistoryError{fmt.Sprintf("its first event is %s, not WorkflowExecutionStarted", first.GetEventType())}
	}
	if attrs.GetWorkflowType().GetName() == "" {
		return nil, &NotAHistoryError{"its WorkflowExecutionStarted event names no workflow type"}
	}
	return &History{
		WorkflowID:   attrs.GetWorkflowId(),
		RunID:        attrs.GetOriginalExecutionRunId(),
		WorkflowType: attrs.GetWorkflowType().GetName(),
		Events:       hist,
	}, nil
}

// FromEvents is the History of events fetched from a server.
func FromEvents(workflowID, runID string, hist *historypb.History) (*History, error) {
	h, err := fromEvents(hist)
	if err != nil {
		return nil, err
	}
	h.WorkflowID, h.RunID = workflowID, runID
	return h, nil
}

// encodeParsedPayloads turns the payloads the Web UI parsed for a decoded
// or readable download back into protojson payloads: metadata values and
// data base64-encoded again, data as the JSON it was parsed from.
func encodeParsedPayloads(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keeps big integers exact
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v, err := encodeParsed(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func encodeParsed(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if p, ok, err := parsedPayload(t); ok || err != nil {
			return p, err
		}
		for k, e := range t {
			ev, err := encodeParsed(e)
			if err != nil {
				return nil, err
			}
			t[k] = ev
		}
	case []any:
		for i, e := range t {
			ev, err := encodeParsed(e)
			if err != nil {
				return nil, err
			}
			t[i] = ev
		}
	}
	return v, nil
}

// parsedPayload reports whether m is a payload in the Web UI's parsed form
// and returns it encoded. Raw payloads have base64 metadata values
// ("anNvbi9wbGFpbg=="), which a plain encoding name ("json/plain") never
// is, padded base64 being a multiple of four characters.
func parsedPayload(m map[string]any) (map[string]any, bool, error) {
	meta, ok := m["metadata"].(map[string]any)
	if !ok {
		return nil, false, nil
	}
	enc, ok := meta["encoding"].(string)
	if !ok || isBase64(enc) {
		return nil, false, nil
	}
	for k := range m {
		if k != "metadata" && k != "data" && k != "externalPayloads" {
			return nil, false, nil
		}
	}
	out := map[string]any{}
	encMeta := map[string]any{}
	for k, mv := range meta {
		s, ok := mv.(string)
		if !ok {
			return nil, false, nil
		}
		encMeta[k] = base64.StdEncoding.EncodeToString([]byte(s))
	}
	out["metadata"] = encMeta
	if d, present := m["data"]; present && !(d == nil && enc == "binary/null") {
		b, err := json.Marshal(d)
		if err != nil {
			return nil, false, err
		}
		out["data"] = base64.StdEncoding.EncodeToString(b)
	}
	if ext, ok := m["externalPayloads"]; ok {
		out["externalPayloads"] = ext
	}
	return out, true, nil
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(s)%4 == 0
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
