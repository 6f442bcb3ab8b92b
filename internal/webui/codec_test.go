package webui_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/internal/systemtest"
)

// codecKeys is the key file of the encrypted system and of the codec
// server the Web UI decodes through, written by startCodecServer.
var codecKeys string

// startCodecServer writes a key file and serves the codec server for the
// UI's origins on a free port, returning its URL.
func startCodecServer() (string, func(), error) {
	dir, err := os.MkdirTemp("", "sagaflow-webui-codec-")
	if err != nil {
		return "", nil, err
	}
	codecKeys = filepath.Join(dir, "keys")
	line := "webui-1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{42}, codec.KeySize)) + "\n"
	if err := os.WriteFile(codecKeys, []byte(line), 0o600); err != nil {
		return "", nil, err
	}
	cdc, err := codec.Load(codec.Config{KeysFile: codecKeys})
	if err != nil {
		return "", nil, err
	}
	h, err := codec.NewServer(cdc, codec.ServerConfig{Namespace: "default", AllowedOrigins: []string{
		"http://127.0.0.1:" + strconv.Itoa(uiPort), "http://localhost:" + strconv.Itoa(uiPort),
	}})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close(); _ = os.RemoveAll(dir) }, nil
}

// TestEncryptedOrderDecodedInWebUI runs a compensated order through a
// system that encrypts its payloads and checks that the Web UI, pointed at
// the codec server with --ui-codec-endpoint, shows the order's input
// decoded: its merchant id, which the stored history holds only encrypted
// (the customer id is also in the CustomerId search attribute, in the clear).
func TestEncryptedOrderDecodedInWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system and a browser")
	}
	chromium := chromiumPath(t)
	sys := systemtest.Start(t, systemtest.Options{WorkerEnv: []string{codec.EnvKeys + "=" + codecKeys}})
	cdc, err := codec.Load(codec.Config{KeysFile: codecKeys})
	require.NoError(t, err)
	tc, err := client.NewClientFromExisting(sys.Temporal, client.Options{
		Namespace: "default", DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
	})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	order, wr, _ := runCompensatedOrder(ctx, t, sys, tc, "enc-")

	// The stored input is encrypted: the plain client cannot read it.
	it := sys.Temporal.GetWorkflowHistory(ctx, wr.GetID(), "", false, 0)
	first, err := it.Next()
	require.NoError(t, err)
	keyID, encrypted := codec.KeyIDOf(first.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0])
	require.True(t, encrypted)
	require.Equal(t, "webui-1", keyID)

	base := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	waitUI(t, base)
	browser := newBrowser(t, chromium)
	bctx, bcancel := context.WithTimeout(browser, 90*time.Second)
	defer bcancel()
	url := fmt.Sprintf("%s/namespaces/default/workflows/%s", base, wr.GetID())
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`main`))), "open %s", url)
	// The UI fetches the history, then asks the codec server to decode
	// its payloads: wait until the decoded input shows.
	shows := fmt.Sprintf(`document.body.innerText.includes(%s)`, strconv.Quote(order.MerchantID))
	_, waitErr := chromedp.Run(bctx, chromedp.Poll[bool](shows,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(250*time.Millisecond)))
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	shot := filepath.Join(screenshotDir(t), "encrypted-order.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot of %s: %s", url, shot)
	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	require.NoError(t, err)
	require.NoError(t, waitErr, "the page never showed the decoded merchant id %s; it shows:\n%s", order.MerchantID, cut(text, 3000))
	require.NotContains(t, text, "binary/encrypted", "no payload left encrypted")
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
