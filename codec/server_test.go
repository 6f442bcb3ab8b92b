package codec

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	uiOrigin = "http://localhost:8233"
	token    = "s3cret-token"
)

func startServer(t *testing.T, c *Codec, cfg ServerConfig) *httptest.Server {
	t.Helper()
	h, err := NewServer(c, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// TestServerSpeaksTheCodecProtocol drives the server with the SDK's own
// client of the protocol, as the Temporal CLI's --codec-endpoint does.
func TestServerSpeaksTheCodecProtocol(t *testing.T) {
	c := ring(t, Options{}, key(t, "k1", secretA))
	srv := startServer(t, c, ServerConfig{Namespace: "default", Token: token})
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: srv.URL,
		ModifyRequest: func(r *http.Request) error {
			r.Header.Set("X-Namespace", "default")
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		},
	})
	in := []*commonpb.Payload{transfer(t)}
	enc, err := remote.Encode(in)
	require.NoError(t, err)
	require.Equal(t, EncodingEncrypted, string(enc[0].Metadata[converter.MetadataEncoding]))
	// What the server encoded, the local codec decodes, and the reverse.
	local, err := c.Decode(enc)
	require.NoError(t, err)
	require.True(t, proto.Equal(in[0], local[0]))
	own, err := c.Encode(in)
	require.NoError(t, err)
	dec, err := remote.Decode(own)
	require.NoError(t, err)
	require.True(t, proto.Equal(in[0], dec[0]))
}

func payloadsBody(t *testing.T, ps ...*commonpb.Payload) string {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	require.NoError(t, err)
	return string(b)
}

func TestServerRequests(t *testing.T) {
	c := ring(t, Options{}, key(t, "k1", secretA))
	other := ring(t, Options{}, key(t, "k9", secretB))
	foreign, err := other.Encode([]*commonpb.Payload{transfer(t)})
	require.NoError(t, err)
	srv := startServer(t, c, ServerConfig{Namespace: "default", AllowedOrigins: []string{uiOrigin}, Token: token, MaxBodyBytes: 2048})
	good := payloadsBody(t, transfer(t))
	many := make([]*commonpb.Payload, 30)
	for i := range many {
		many[i] = transfer(t)
	}
	oversized := payloadsBody(t, many...)
	require.Greater(t, len(oversized), 2048)

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		body       string
		chunked    bool
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{name: "encode", method: "POST", path: "/encode", body: good, wantStatus: 200, wantBody: `"payloads"`},
		{name: "decode passes plaintext through", method: "POST", path: "/decode", body: good, wantStatus: 200, wantBody: `"payloads"`},
		{name: "CORS on an allowed origin's request", method: "POST", path: "/decode", body: good, header: map[string]string{"Origin": uiOrigin},
			wantStatus: 200, wantHeader: map[string]string{"Access-Control-Allow-Origin": uiOrigin}},
		{name: "preflight from the Web UI, without the token", method: "OPTIONS", path: "/decode",
			header:     map[string]string{"Origin": uiOrigin, "Authorization": "", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"},
			wantStatus: 204, wantHeader: map[string]string{"Access-Control-Allow-Origin": uiOrigin, "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Namespace", "Access-Control-Allow-Methods": "POST, OPTIONS"}},
		{name: "preflight from another origin", method: "OPTIONS", path: "/decode", header: map[string]string{"Origin": "http://evil.example"},
			wantStatus: 403, wantHeader: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "another origin gets no CORS headers", method: "POST", path: "/decode", body: good, header: map[string]string{"Origin": "http://evil.example"},
			wantStatus: 200, wantHeader: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "no token", method: "POST", path: "/decode", body: good, header: map[string]string{"Authorization": ""}, wantStatus: 401, wantBody: "missing or wrong bearer token",
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="sagaflow codec server"`}},
		{name: "wrong token", method: "POST", path: "/decode", body: good, header: map[string]string{"Authorization": "Bearer s3cret-tokeN"}, wantStatus: 401},
		{name: "token without Bearer", method: "POST", path: "/decode", body: good, header: map[string]string{"Authorization": token}, wantStatus: 401},
		{name: "no namespace", method: "POST", path: "/decode", body: good, header: map[string]string{"X-Namespace": ""}, wantStatus: 400, wantBody: "missing X-Namespace header"},
		{name: "other namespace", method: "POST", path: "/decode", body: good, header: map[string]string{"X-Namespace": "payments"}, wantStatus: 403, wantBody: `namespace "payments" is not served here`},
		{name: "malformed JSON", method: "POST", path: "/decode", body: `{"payloads": [`, wantStatus: 400, wantBody: "unexpected EOF"},
		{name: "not a Payloads message", method: "POST", path: "/encode", body: `{"payload": 1}`, wantStatus: 400, wantBody: "unknown field"},
		{name: "empty body", method: "POST", path: "/decode", body: ``, wantStatus: 400},
		{name: "oversized, declared", method: "POST", path: "/encode", body: oversized,
			wantStatus: 413, wantBody: "exceeds the limit of 2048"},
		{name: "oversized, chunked", method: "POST", path: "/encode", chunked: true, body: oversized,
			wantStatus: 413, wantBody: "exceeds the limit of 2048 bytes"},
		{name: "under a key the server lacks", method: "POST", path: "/decode", body: payloadsBody(t, foreign...), wantStatus: 400, wantBody: `payload is encrypted with key "k9"`},
		{name: "GET", method: "GET", path: "/decode", wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "unknown path", method: "POST", path: "/default/transcode", body: good, wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(strings.NewReader(tt.body)) // unknown length: sent chunked
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Namespace", "default")
			req.Header.Set("Authorization", "Bearer "+token)
			for k, v := range tt.header {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tt.wantStatus, resp.StatusCode, "body: %s", b)
			require.Contains(t, string(b), tt.wantBody)
			for k, v := range tt.wantHeader {
				require.Equal(t, v, resp.Header.Get(k), "header %s", k)
			}
		})
	}
}

func TestServerConfigValidate(t *testing.T) {
	_, err := NewServer(ring(t, Options{}), ServerConfig{AllowedOrigins: []string{"localhost:8233", "http://localhost:8233/"}, MaxBodyBytes: -1})
	require.EqualError(t, err, "namespace must not be empty\n"+
		`origin "localhost:8233": want scheme://host[:port] without a path`+"\n"+
		`origin "http://localhost:8233/": want scheme://host[:port] without a path`+"\n"+
		"max body bytes must not be negative")
}
