package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// TestEncryptedSagas runs a compensated order through a system whose worker
// and CLI encrypt payloads, then reads its histories raw with the Temporal
// CLI: no customer id, account id or amount in plaintext, except the
// customer id in the CustomerId search attribute, which the server indexes
// and so never encrypts. Through the codec server the same histories
// decode; the audit trail with the keys is the plaintext one, and without
// them it names the key it needs.
func TestEncryptedSagas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system")
	}
	cli, ok := temporaltest.CLIPath()
	if !ok {
		t.Skip("no Temporal CLI")
	}
	keys := writeKeys(t, "k1")
	sys := systemtest.Start(t, systemtest.Options{WorkerEnv: []string{codec.EnvKeys + "=" + keys}})
	plain := &liveSystem{System: sys, args: []string{
		"--address", sys.TemporalAddress, "--namespace", "default", "--task-queue", sys.TaskQueue,
		"--amqp-url", sys.AMQPURL, "--ui-url", "http://ui.test", "--timeout", "60s",
	}}
	keyed := &liveSystem{System: sys, args: append([]string{"--codec-keys", keys}, plain.args...)}

	suffix := strings.ToLower(newID())
	cust, shop, sku := "cust-"+suffix, "shop-"+suffix, "sku-"+suffix
	keyed.cli(t, exitOK, "account", "open", cust, "--initial", "100.00")
	keyed.cli(t, exitOK, "account", "open", shop)
	keyed.cli(t, exitOK, "stock", "add", sku, "--quantity", "5")
	// 1234.57 EUR: more than the customer has, so the payment is refused
	// and the reservation released.
	out, _ := keyed.cli(t, exitOK, "order", "--id", "o-"+suffix, "--customer", cust, "--merchant", shop,
		"--line", sku+":1:1234.57", "--wait")
	require.Contains(t, out, `"outcome":"cancelled"`)
	require.Contains(t, out, `"reason":"insufficient_funds"`)
	wf := "order-o-" + suffix
	secrets := []string{cust, shop, "123457"}

	// The audit trail with the keys: the steps, their inputs and the
	// compensation, as without encryption.
	out, _ = keyed.cli(t, exitOK, "history", wf, "--full")
	requireInOrder(t, out, "started       OrderWorkflow input {", cust, "step          reserve [ReserveInventory]", "child", "TransferWorkflow",
		"insufficient_funds", "status        Compensating", "compensation  release [ReleaseInventory]", "status        Compensated", "closed        Completed")
	require.NotContains(t, out, "encrypted with key")
	out, _ = keyed.cli(t, exitOK, "history", wf, "--json")
	var tl struct {
		Records []struct {
			Kind       string `json:"kind"`
			WorkflowID string `json:"workflow_id"`
		} `json:"records"`
		EncryptedKeys []string `json:"encrypted_keys"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &tl))
	require.Empty(t, tl.EncryptedKeys)
	ids := []string{wf}
	for _, r := range tl.Records {
		if r.Kind == "child" {
			ids = append(ids, r.WorkflowID)
		}
	}
	require.Len(t, ids, 2, "the order and its payment saga")

	// Raw, without the codec: nothing in plaintext but the search attribute.
	for _, id := range ids {
		raw := showHistory(t, cli, sys.TemporalAddress, id)
		require.True(t, strings.Contains(raw, base64.StdEncoding.EncodeToString([]byte(codec.EncodingEncrypted))), "the payloads of %s are there, encrypted", id)
		leaks, indexed := scanHistory(t, raw, secrets)
		require.Empty(t, leaks, "plaintext in the raw history of %s", id)
		if id == wf {
			require.Equal(t, []string{cust}, indexed, "only the CustomerId search attribute holds the customer id")
		}
	}

	// Through the codec server, the Temporal CLI decodes the same history:
	// the scan above would have caught plaintext.
	addr := serveCodecForTest(t, keys)
	decoded := showHistory(t, cli, sys.TemporalAddress, wf, "--codec-endpoint", "http://"+addr)
	leaks, _ := scanHistory(t, decoded, secrets)
	require.Subset(t, leaks, secrets, "decoded through the codec server")

	// Without the keys the CLI says the payloads are encrypted and which
	// key they need, and shows none of them.
	out, _ = plain.cli(t, exitOK, "history", wf, "--full")
	require.Contains(t, out, "note:    payloads are encrypted with key k1, which is not configured here: set SAGAFLOW_CODEC_KEYS")
	require.Contains(t, out, "<encrypted with key k1>")
	require.Contains(t, out, "closed        Completed")
	for _, s := range secrets {
		require.NotContains(t, out, s)
	}
	out, _ = plain.cli(t, exitOK, "status", wf)
	require.Contains(t, out, "status:  Completed, saga Compensated")
	require.Contains(t, out, `payload is encrypted with key "k1" and no key is configured`)
	out, _ = keyed.cli(t, exitOK, "status", wf)
	require.Contains(t, out, "state:\n")
	// list reads search attributes only, which are never encrypted.
	out, _ = plain.cli(t, exitOK, "list", "--customer", cust)
	require.Contains(t, out, wf)
}

// showHistory is `temporal workflow show --output json` of a workflow.
func showHistory(t *testing.T, cli, address, workflowID string, extra ...string) string {
	t.Helper()
	args := append([]string{"workflow", "show", "--address", address, "--namespace", "default", "--workflow-id", workflowID, "--output", "json"}, extra...)
	out, err := exec.CommandContext(t.Context(), cli, args...).CombinedOutput()
	require.NoError(t, err, "temporal %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// scanHistory returns the secrets found in a history's JSON outside search
// attributes, and those found inside them. Strings are also searched
// base64-decoded, as the CLI prints payloads it cannot read.
func scanHistory(t *testing.T, raw string, secrets []string) (found, indexed []string) {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal([]byte(raw), &doc))
	seen := map[string]bool{}
	seenIndexed := map[string]bool{}
	var walk func(v any, inSearchAttributes bool)
	walk = func(v any, inSA bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(e, inSA || k == "searchAttributes")
			}
		case []any:
			for _, e := range v {
				walk(e, inSA)
			}
		case string, float64:
			text := strings.Trim(string(mustJSON(t, v)), `"`)
			if b, err := base64.StdEncoding.DecodeString(text); err == nil {
				text += "\n" + string(b)
			}
			for _, s := range secrets {
				if strings.Contains(text, s) {
					if inSA {
						seenIndexed[s] = true
					} else {
						seen[s] = true
					}
				}
			}
		}
	}
	walk(doc, false)
	for _, s := range secrets {
		if seen[s] {
			found = append(found, s)
		}
		if seenIndexed[s] {
			indexed = append(indexed, s)
		}
	}
	return found, indexed
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// serveCodecForTest runs the codec server as `starter codec-server` does
// until the test ends, returning its address.
func serveCodecForTest(t *testing.T, keys string) string {
	t.Helper()
	cdc, err := codec.Load(codec.Config{KeysFile: keys})
	require.NoError(t, err)
	a := newApp(func(string) string { return "" }, io.Discard, io.Discard)
	a.cfg.Namespace, a.cfg.UIURL, a.codec = "default", "http://ui.test", cdc
	cfg, err := a.codecServerConfig("")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serveCodec(ctx, addr, cfg) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	waitListening(t, addr)
	return addr
}
