package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sagaflow/sagaflow/codec"
)

// writeKeys writes a key file with a key per id, the first encrypting.
func writeKeys(t *testing.T, ids ...string) string {
	t.Helper()
	var b strings.Builder
	for i, id := range ids {
		b.WriteString(id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i + 1)}, codec.KeySize)) + "\n")
	}
	path := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

func TestBadCodecConfigurationIsOneLine(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("k1:"+base64.StdEncoding.EncodeToString(make([]byte, 31))), 0o600))
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unreadable key file", map[string]string{codec.EnvKeys: filepath.Join(dir, "none")}, []string{"list"},
			"starter: --codec-keys: key file " + filepath.Join(dir, "none") + ": no such file or directory\n"},
		{"short key", nil, []string{"list", "--codec-keys", short},
			"starter: --codec-keys: key file " + short + `: line 1: key "k1" is 31 bytes, want 32 (AES-256)` + "\n"},
		{"codec server without keys", nil, []string{"codec-server"},
			"starter: codec-server needs keys: set --codec-keys or SAGAFLOW_CODEC_KEYS\n"},
		{"codec server with a bad origin", nil, []string{"codec-server", "--codec-keys", writeKeys(t, "k1"), "--ui-origin", "localhost:8233"},
			`starter: --ui-origin: origin "localhost:8233": want scheme://host[:port] without a path` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.env, append(tc.args, unreachable...)...)
			require.Equal(t, exitUsage, code)
			require.Empty(t, out)
			first, _, _ := strings.Cut(errOut, "\n")
			require.Equal(t, tc.want, first+"\n")
		})
	}
}

// TestCodecServerCommand serves the codec server as codec-server does and
// decodes a payload the codec encrypted, for the UI's origin by default.
func TestCodecServerCommand(t *testing.T) {
	keys := writeKeys(t, "k1")
	cdc, err := codec.Load(codec.Config{KeysFile: keys})
	require.NoError(t, err)
	a := newApp(func(k string) string { return map[string]string{envCodecAuth: "tok"}[k] }, io.Discard, io.Discard)
	a.cfg.Namespace, a.cfg.UIURL, a.codec = "default", "http://localhost:8233/", cdc
	cfg, err := a.codecServerConfig("")
	require.NoError(t, err)
	require.Equal(t, []string{"http://localhost:8233"}, cfg.AllowedOrigins, "the origin of --ui-url")
	require.Equal(t, "tok", cfg.Token)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.serveCodec(ctx, addr, cfg) }()

	p, err := converter.GetDefaultDataConverter().ToPayload("cust-4711")
	require.NoError(t, err)
	enc, err := cdc.Encode([]*commonpb.Payload{p})
	require.NoError(t, err)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	require.NoError(t, err)
	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/decode", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-Namespace", "default")
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Origin", "http://localhost:8233")
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "codec server not answering: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", got)
	require.Equal(t, "http://localhost:8233", resp.Header.Get("Access-Control-Allow-Origin"))
	var decoded commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(got, &decoded))
	var s string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(decoded.Payloads[0], &s))
	require.Equal(t, "cust-4711", s)

	cancel()
	require.NoError(t, <-done, "stops cleanly when its context ends")
}

// waitListening polls until addr accepts connections: a server started in
// a goroutine gives no other signal.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		require.True(t, time.Now().Before(deadline), "nothing listens on %s: %v", addr, err)
		time.Sleep(20 * time.Millisecond)
	}
}
