package replay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/workflows"
)

const recorded = "../../workflows/testdata"

func newReplayer(t *testing.T, register func(worker.WorkflowRegistry)) *Replayer {
	t.Helper()
	r, err := New(Options{Register: register})
	require.NoError(t, err)
	return r
}

func recordedFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(recorded, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

func TestEveryRecordedHistoryReplays(t *testing.T) {
	r := newReplayer(t, workflows.Register)
	require.Equal(t, []string{contract.OrderWorkflowType, contract.ReservationWorkflowType, contract.TransferWorkflowType}, r.WorkflowTypes())
	var jobs []Job
	for _, f := range recordedFiles(t) {
		jobs = append(jobs, FileJob(f))
	}
	var calls int
	rep := r.Run(context.Background(), jobs, RunOptions{Concurrency: 3, Progress: func(done, total, failed int) {
		calls++
		require.Equal(t, calls, done)
		require.Equal(t, len(jobs), total)
		require.Zero(t, failed)
	}})
	require.Empty(t, rep.Failures)
	require.Equal(t, Counts{Replayed: len(jobs), Passed: len(jobs)}, rep.Counts)
	require.Equal(t, len(jobs), calls)
	for _, typ := range r.WorkflowTypes() {
		require.Positive(t, rep.ByType[typ].Passed, typ)
	}
}

// readableDownload is what the Web UI's "readable" download does to a
// payload: metadata values and data base64-decoded, data parsed as JSON.
// Its "decoded" download does it only to the memo, the header and the
// search attributes (parsed is false until the walk is inside them).
func readableDownload(t *testing.T, v any, parsed bool) any {
	switch m := v.(type) {
	case map[string]any:
		if meta, ok := m["metadata"].(map[string]any); ok && parsed {
			if _, ok := meta["encoding"]; ok {
				plain := map[string]any{}
				for k, e := range meta {
					b, err := base64.StdEncoding.DecodeString(e.(string))
					require.NoError(t, err)
					plain[k] = string(b)
				}
				out := map[string]any{"metadata": plain, "data": nil}
				if d, ok := m["data"].(string); ok {
					b, err := base64.StdEncoding.DecodeString(d)
					require.NoError(t, err)
					var parsed any
					require.NoError(t, json.Unmarshal(b, &parsed))
					out["data"] = parsed
				}
				return out
			}
		}
		for k, e := range m {
			m[k] = readableDownload(t, e, parsed || k == "memo" || k == "header" || k == "searchAttributes")
		}
	case []any:
		for i, e := range m {
			m[i] = readableDownload(t, e, parsed)
		}
	}
	return v
}

// shorthandEnums rewrites the enum values of m in its JSON data the way
// older servers wrote them: EVENT_TYPE_WORKFLOW_EXECUTION_STARTED as
// WorkflowExecutionStarted.
func shorthandEnums(m protoreflect.Message, data []byte) []byte {
	repl := map[string]string{}
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Kind() == protoreflect.EnumKind && !fd.IsList():
				ed := fd.Enum()
				name := string(ed.Values().ByNumber(v.Enum()).Name())
				prefix := strings.ToUpper(regexp.MustCompile(`([a-z])([A-Z])`).ReplaceAllString(string(ed.Name()), "${1}_${2}")) + "_"
				var short strings.Builder
				for _, w := range strings.Split(strings.TrimPrefix(name, prefix), "_") {
					short.WriteString(w[:1] + strings.ToLower(w[1:]))
				}
				repl[`"`+name+`"`] = `"` + short.String() + `"`
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(mv.Message())
					return true
				})
			case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(m)
	out := string(data)
	for full, short := range repl {
		out = strings.ReplaceAll(out, full, short)
	}
	return []byte(out)
}

// TestParseAcceptsTheCLIAndWebUIFormats replays one history in each form
// the Temporal tools write it.
func TestParseAcceptsTheCLIAndWebUIFormats(t *testing.T) {
	cliJSON, err := os.ReadFile(filepath.Join(recorded, "order_payment_refused.json"))
	require.NoError(t, err)
	require.Contains(t, string(cliJSON), `"eventType": "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"`)
	h, err := Parse(cliJSON)
	require.NoError(t, err)

	// The Web UI's server marshals the API's responses with
	// temporalproto's JSON options, as the CLI does; older servers wrote
	// shorthand enums ("WorkflowExecutionStarted", "Normal"), as in the
	// Web UI's own fixtures.
	uiJSON, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h.Events)
	require.NoError(t, err)
	shorthand := shorthandEnums(h.Events.ProtoReflect(), uiJSON)
	require.Contains(t, string(shorthand), `"eventType": "WorkflowExecutionStarted"`)
	require.Contains(t, string(shorthand), `"kind": "Normal"`)

	var doc struct {
		Events []any `json:"events"`
	}
	require.NoError(t, json.Unmarshal(uiJSON, &doc))
	array, err := json.Marshal(doc.Events)
	require.NoError(t, err)
	reversed := make([]any, len(doc.Events))
	for i, e := range doc.Events {
		reversed[len(doc.Events)-1-i] = e
	}
	descending, err := json.Marshal(reversed)
	require.NoError(t, err)
	var again struct {
		Events []any `json:"events"`
	}
	require.NoError(t, json.Unmarshal(uiJSON, &again))
	decoded, err := json.Marshal(map[string]any{"events": readableDownload(t, again.Events, false)})
	require.NoError(t, err)
	require.Contains(t, string(decoded), `"encoding":"json/plain"`)
	require.Contains(t, string(decoded), `"encoding":"anNvbi9wbGFpbg=="`, "payloads outside memo, header and search attributes stay encoded")
	readable, err := json.Marshal(map[string]any{"events": readableDownload(t, doc.Events, true)})
	require.NoError(t, err)
	require.Contains(t, string(readable), `"encoding":"json/plain"`)
	require.Contains(t, string(readable), `"customer_id":"cust"`)

	r := newReplayer(t, workflows.Register)
	for name, data := range map[string][]byte{
		"cli": cliJSON, "web ui": uiJSON, "shorthand enums": shorthand, "bare array": array, "newest first": descending, "web ui decoded": decoded, "web ui readable": readable,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(data)
			require.NoError(t, err)
			require.Equal(t, contract.OrderWorkflowType, got.WorkflowType)
			require.Equal(t, h.WorkflowID, got.WorkflowID)
			require.True(t, strings.HasPrefix(got.WorkflowID, "order-replay-"), got.WorkflowID)
			require.Equal(t, h.RunID, got.RunID)
			require.Len(t, got.Events.Events, len(h.Events.Events))
			require.EqualValues(t, 1, got.Events.Events[0].GetEventId())
			require.Nil(t, r.Replay(got))
		})
	}
}

func TestBadInputIsNamed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	noStart := `{"events":[{"eventId":"1","eventType":"EVENT_TYPE_WORKFLOW_TASK_SCHEDULED","workflowTaskScheduledEventAttributes":{}}]}`
	unknown, err := os.ReadFile(filepath.Join(recorded, "order_confirmed.json"))
	require.NoError(t, err)
	tests := []struct {
		name, path string
		kind       Kind
		want       string
	}{
		{"missing file", filepath.Join(dir, "nope.json"), KindUnreadable, "no such file or directory"},
		{"empty", write("empty.json", " \n"), KindNotAHistory, "not a workflow history: the file is empty"},
		{"not JSON", write("notes.txt", "hello"), KindNotAHistory, "want a JSON object"},
		{"broken JSON", write("broken.json", `{"events": [`), KindNotAHistory, "invalid JSON"},
		{"other JSON", write("config.json", `{"name": "x"}`), KindNotAHistory, `no "events" in the JSON object`},
		{"no events", write("none.json", `{"events": []}`), KindNotAHistory, "it has no events"},
		{"wrong event shape", write("shape.json", `{"events": [{"eventId": "one"}]}`), KindNotAHistory, "not a workflow history"},
		{"no start", write("nostart.json", noStart), KindNotAHistory, "its first event is WorkflowTaskScheduled, not WorkflowExecutionStarted"},
		{"unknown workflow type", write("unknown.json", strings.Replace(string(unknown), `"name": "OrderWorkflow"`, `"name": "RefundWorkflow"`, 1)),
			KindUnknownType, "workflow type RefundWorkflow is not in this binary (it knows OrderWorkflow, ReserveInventoryWorkflow, TransferWorkflow)"},
	}
	r := newReplayer(t, workflows.Register)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := r.Run(context.Background(), []Job{FileJob(tc.path)}, RunOptions{})
			require.Equal(t, Counts{Replayed: 1, Failed: 1}, rep.Counts)
			f := rep.Failures[0]
			require.Equal(t, tc.kind, f.Kind)
			require.Contains(t, f.Error, tc.want)
			require.NotContains(t, f.Error, "\n")
			require.Equal(t, tc.path, f.Source)
		})
	}
}

// reserveFirst is OrderWorkflow with a timer added before its first step:
// an incompatible change.
func reserveFirst(ctx workflow.Context, order events.OrderPlaced) (contract.OrderResult, error) {
	if err := workflow.Sleep(ctx, time.Second); err != nil {
		return contract.OrderResult{}, err
	}
	return workflows.OrderWorkflow(ctx, order)
}

func TestAnIncompatibleChangeIsNonDeterministic(t *testing.T) {
	r := newReplayer(t, func(reg worker.WorkflowRegistry) {
		reg.RegisterWorkflowWithOptions(reserveFirst, workflow.RegisterOptions{Name: contract.OrderWorkflowType})
		reg.RegisterWorkflowWithOptions(workflows.ReserveInventoryWorkflow, workflow.RegisterOptions{Name: contract.ReservationWorkflowType})
	})
	h, err := ReadFile(filepath.Join(recorded, "order_confirmed.json"))
	require.NoError(t, err)
	f := r.Replay(h)
	require.NotNil(t, f)
	require.Equal(t, KindNonDeterministic, f.Kind)
	require.Contains(t, f.Error(), "[TMPRL1100]")
	require.NotContains(t, f.Error(), "\n")
}

func TestNewNeedsRegistrations(t *testing.T) {
	_, err := New(Options{})
	require.ErrorContains(t, err, "Options.Register is required")
	_, err = New(Options{Register: func(worker.WorkflowRegistry) {}})
	require.ErrorContains(t, err, "registered no workflow")
}
