package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v3"

	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/repo"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

func committedDocument(t *testing.T) (string, []byte) {
	t.Helper()
	root, err := repo.Root()
	require.NoError(t, err)
	path := filepath.Join(root, documentPath)
	doc, err := os.ReadFile(path)
	require.NoError(t, err, "%s is missing: run go run ./internal/asyncapi", documentPath)
	return path, doc
}

func generatedDocument(t *testing.T) []byte {
	t.Helper()
	entries, err := catalogEntries()
	require.NoError(t, err)
	doc, err := generate(entries)
	require.NoError(t, err)
	return doc
}

func TestDocumentIsUpToDate(t *testing.T) {
	_, committed := committedDocument(t)
	if !bytes.Equal(committed, generatedDocument(t)) {
		t.Fatalf("%s is out of date with the events catalog: run go run ./internal/asyncapi and commit it", documentPath)
	}
}

// TestPublishedVersionsKeepTheirShape is the compatibility check: every
// payload version in the committed document still has every field, with its
// type, and no new required one.
func TestPublishedVersionsKeepTheirShape(t *testing.T) {
	_, committed := committedDocument(t)
	problems, err := incompatibilities(committed, generatedDocument(t))
	require.NoError(t, err)
	require.Empty(t, problems, "%s", breakingAdvice)
}

func TestEveryCatalogTypeIsInTheDocument(t *testing.T) {
	var doc struct {
		Channels   map[string]map[string]any `yaml:"channels"`
		Operations map[string]map[string]any `yaml:"operations"`
		Components struct {
			Messages map[string]map[string]any `yaml:"messages"`
			Schemas  map[string]any            `yaml:"schemas"`
		} `yaml:"components"`
	}
	require.NoError(t, yaml.Unmarshal(generatedDocument(t), &doc))
	for _, typ := range events.Types() {
		info, _ := events.Lookup(typ)
		for v := 1; v <= info.Version; v++ {
			id := messageID(typ, v)
			require.Contains(t, doc.Components.Messages, id)
			require.Contains(t, doc.Components.Schemas, id)
		}
		switch info.Kind {
		case events.KindEvent:
			require.Contains(t, doc.Channels, eventChannelID(typ))
			require.Equal(t, typ, doc.Channels[eventChannelID(typ)]["address"], "the routing key is the type")
			require.Contains(t, doc.Operations, "publish."+typ)
		case events.KindCommand:
			require.Contains(t, doc.Operations, "send."+typ)
		}
	}
	require.Equal(t, "events.UpcastOrderPlacedV1", upcast(t, doc.Components.Messages["order.placed.v1"]))
	require.Contains(t, doc.Channels["events.order.placed"]["messages"], "order.placed.v1", "consumers still read version 1")
	require.Contains(t, doc.Channels["queue.ledger.commands"]["messages"], "ledger.withdraw.v1")
	require.Contains(t, doc.Channels["queue.sagas.replies"]["messages"], "command.replied.v1")
}

func upcast(t *testing.T, m map[string]any) string {
	t.Helper()
	u, ok := m["x-sagaflow-upcast"].(map[string]any)
	require.True(t, ok, "no upcaster in %v", m)
	return u["upcaster"].(string)
}

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type base struct {
	Tenant string `json:"tenant,omitempty"`
}

type sample struct {
	base
	ID      string            `json:"id"`
	Note    string            `json:"note,omitempty"`
	When    time.Time         `json:"when,omitzero"`
	Total   *money            `json:"total,omitempty"`
	Lines   []money           `json:"lines"`
	Count   int32             `json:"count"`
	Labels  map[string]string `json:"labels,omitempty"`
	Raw     json.RawMessage   `json:"raw,omitempty"`
	Ignored string            `json:"-"`
	hidden  string
}

func TestSchemaOfFollowsEncodingJSON(t *testing.T) {
	s, err := schemaOf(reflect.TypeFor[sample]())
	require.NoError(t, err)
	out, err := yaml.Marshal(s)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, yaml.Unmarshal(out, &got))
	moneySchema := map[string]any{"type": "object", "properties": map[string]any{
		"amount": map[string]any{"type": "integer", "format": "int64"}, "currency": map[string]any{"type": "string"}},
		"required": []any{"amount", "currency"}}
	require.Equal(t, map[string]any{
		"type": "object",
		"properties": map[string]any{
			"tenant": map[string]any{"type": "string"},
			"id":     map[string]any{"type": "string"},
			"note":   map[string]any{"type": "string"},
			"when":   map[string]any{"type": "string", "format": "date-time"},
			"total":  moneySchema,
			"lines":  map[string]any{"type": "array", "items": moneySchema},
			"count":  map[string]any{"type": "integer", "format": "int32"},
			"labels": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			"raw":    map[string]any{"description": "any JSON value"},
		},
		"required": []any{"id", "lines", "count"},
	}, got)
	_ = sample{}.hidden
}

// The payload of a published version, and edits to it.
type payloadV1 struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
	Note   string `json:"note,omitempty"`
}
type payloadRemoved struct {
	ID   string `json:"id"`
	Note string `json:"note,omitempty"`
}
type payloadRetyped struct {
	ID     string `json:"id"`
	Amount string `json:"amount"`
	Note   string `json:"note,omitempty"`
}
type payloadAddedOptional struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
	Note   string `json:"note,omitempty"`
	Memo   string `json:"memo,omitempty"`
}
type payloadAddedRequired struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
	Note   string `json:"note"`
}
type payloadNested struct {
	ID     string  `json:"id"`
	Amount int64   `json:"amount"`
	Note   string  `json:"note,omitempty"`
	Lines  []money `json:"lines,omitempty"`
}
type payloadNestedRetyped struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
	Note   string `json:"note,omitempty"`
	Lines  []struct {
		Amount string `json:"amount"`
	} `json:"lines,omitempty"`
}

func testEntry(versions ...reflect.Type) []entry {
	e := entry{Type: "test.happened", Kind: events.KindEvent, Version: len(versions), Payloads: map[int]reflect.Type{}}
	for i, v := range versions {
		e.Payloads[i+1] = v
		if i > 0 {
			e.Upcasters = append(e.Upcasters, "events.UpcastTestV"+string(rune('0'+i)))
		}
	}
	return []entry{e}
}

func TestCompatibilityCheck(t *testing.T) {
	v1 := reflect.TypeFor[payloadV1]()
	tests := []struct {
		name      string
		published []entry
		current   []entry
		want      []string
	}{
		{"unchanged", testEntry(v1), testEntry(v1), nil},
		{"a field removed", testEntry(v1), testEntry(reflect.TypeFor[payloadRemoved]()), []string{"test.happened.v1: field amount removed"}},
		{"a field retyped", testEntry(v1), testEntry(reflect.TypeFor[payloadRetyped]()), []string{"test.happened.v1: field amount retyped from integer to string"}},
		{"an optional field added", testEntry(v1), testEntry(reflect.TypeFor[payloadAddedOptional]()), nil},
		{"a field made required", testEntry(v1), testEntry(reflect.TypeFor[payloadAddedRequired]()), []string{"test.happened.v1: field note is required now"}},
		{"a nested field retyped", testEntry(reflect.TypeFor[payloadNested]()), testEntry(reflect.TypeFor[payloadNestedRetyped]()),
			[]string{"test.happened.v1: field lines[].amount retyped from integer to string", "test.happened.v1: field lines[].currency removed"}},
		{"a new version with the old one kept", testEntry(v1), testEntry(v1, reflect.TypeFor[payloadRemoved]()), nil},
		{"a version dropped", testEntry(v1, reflect.TypeFor[payloadRemoved]()), testEntry(reflect.TypeFor[payloadRemoved]()),
			[]string{"test.happened.v1: field amount removed", "test.happened.v2: published, and no longer in the catalog"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := generate(tc.published)
			require.NoError(t, err)
			cur, err := generate(tc.current)
			require.NoError(t, err)
			got, err := incompatibilities(pub, cur)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestDocumentValidatesWithTheAsyncAPIParser runs the official parser
// (@asyncapi/parser, pinned in testdata/parser/package.json; `npm ci` there
// installs it) on the committed document.
func TestDocumentValidatesWithTheAsyncAPIParser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "Node.js", "install Node.js 20 or later")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "parser"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@asyncapi", "parser")); err != nil {
		testenv.Unavailable(t, "@asyncapi/parser", "run `npm ci` in internal/asyncapi/testdata/parser")
	}
	path, _ := committedDocument(t)
	out, err := exec.Command(node, filepath.Join(dir, "validate.mjs"), path).CombinedOutput()
	require.NoError(t, err, "the AsyncAPI parser rejects %s:\n%s", documentPath, out)
	require.Contains(t, string(out), "valid: AsyncAPI 3.0.0")
	for _, line := range strings.Split(string(out), "\n") {
		require.False(t, strings.HasPrefix(line, "warning "), "parser warning: %s", line)
	}
	t.Logf("%s", out)
}

// TestParserRejectsABrokenDocument shows the validation has teeth: a
// document whose operation names a channel that does not exist fails.
func TestParserRejectsABrokenDocument(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "Node.js", "install Node.js 20 or later")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "parser"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@asyncapi", "parser")); err != nil {
		testenv.Unavailable(t, "@asyncapi/parser", "run `npm ci` in internal/asyncapi/testdata/parser")
	}
	doc := generatedDocument(t)
	broken := bytes.Replace(doc, []byte("$ref: '#/channels/events.funds.deposited'"), []byte("$ref: '#/channels/events.nosuch'"), 1)
	require.NotEqual(t, doc, broken)
	path := filepath.Join(t.TempDir(), "broken.yaml")
	require.NoError(t, os.WriteFile(path, broken, 0o644))
	out, err := exec.Command(node, filepath.Join(dir, "validate.mjs"), path).CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "error ")
}

// TestGeneratorRefusesToBreakAPublishedVersion: a published document with a
// field the catalog no longer has stops the generator (and -check) until
// -allow-breaking; an up-to-date one passes -check.
func TestGeneratorRefusesToBreakAPublishedVersion(t *testing.T) {
	doc := generatedDocument(t)
	path := filepath.Join(t.TempDir(), "asyncapi.yaml")
	require.NoError(t, os.WriteFile(path, doc, 0o644))
	require.NoError(t, run(path, true, false))

	// The published funds.withdrawn had a field "fee" that is gone now.
	published := bytes.Replace(doc, []byte("    funds.withdrawn.v1:\n      type: object\n      properties:\n"),
		[]byte("    funds.withdrawn.v1:\n      type: object\n      properties:\n        fee:\n          type: integer\n"), 1)
	require.NotEqual(t, doc, published)
	require.NoError(t, os.WriteFile(path, published, 0o644))
	err := run(path, false, false)
	require.ErrorContains(t, err, "funds.withdrawn.v1: field fee removed")
	require.ErrorContains(t, err, "register the type at the next version with an upcaster")
	got, _ := os.ReadFile(path)
	require.Equal(t, published, got, "nothing written")
	require.Error(t, run(path, true, true), "-check never accepts a break")

	require.NoError(t, run(path, false, true))
	got, _ = os.ReadFile(path)
	require.Equal(t, doc, got)
	require.Error(t, run(filepath.Join(t.TempDir(), "missing.yaml"), true, false), "-check fails without a document")
}
