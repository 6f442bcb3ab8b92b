package codec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// ring builds a codec whose keys are given as id → secret, in order.
func ring(t *testing.T, opts Options, keys ...Key) *Codec {
	t.Helper()
	ks, err := NewKeys(keys...)
	require.NoError(t, err)
	c, err := New(ks, opts)
	require.NoError(t, err)
	return c
}

func key(t *testing.T, id string, secret []byte) Key {
	t.Helper()
	k, err := NewKey(id, secret)
	require.NoError(t, err)
	return k
}

// transfer is a payload carrying what must never be stored in plaintext.
func transfer(t *testing.T) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(map[string]any{
		"source_account_id": "cust-4711", "target_account_id": "merch-0815", "amount": 4321,
	})
	require.NoError(t, err)
	p.Metadata["custom"] = []byte("kept")
	return p
}

func TestRoundTripRestoresPayloadAndMetadata(t *testing.T) {
	big, err := converter.GetDefaultDataConverter().ToPayload(strings.Repeat("cust-4711 ", 500))
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		opts Options
		in   *commonpb.Payload
	}{
		{"plain", Options{}, transfer(t)},
		{"compressed", Options{Compress: true}, big},
		{"compression on, payload too small to gain", Options{Compress: true}, transfer(t)},
		{"empty data", Options{}, &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte("binary/null")}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ring(t, tt.opts, key(t, "k1", secretA))
			enc, err := c.Encode([]*commonpb.Payload{tt.in})
			require.NoError(t, err)
			require.Len(t, enc, 1)
			require.Equal(t, EncodingEncrypted, string(enc[0].Metadata[converter.MetadataEncoding]))
			require.Equal(t, "k1", string(enc[0].Metadata[MetadataKeyID]))
			require.Len(t, enc[0].Metadata, 2, "only the encoding and the key id are visible")
			require.NotContains(t, string(enc[0].Data), "cust-4711")
			require.NotContains(t, string(enc[0].Data), "kept")
			dec, err := c.Decode(enc)
			require.NoError(t, err)
			require.True(t, proto.Equal(tt.in, dec[0]), "decoded %v, want %v", dec[0], tt.in)
		})
	}
}

func TestCompressionShrinksBeforeEncrypting(t *testing.T) {
	big, err := converter.GetDefaultDataConverter().ToPayload(strings.Repeat("cust-4711 ", 500))
	require.NoError(t, err)
	plain, err := ring(t, Options{}, key(t, "k1", secretA)).Encode([]*commonpb.Payload{big})
	require.NoError(t, err)
	small, err := ring(t, Options{Compress: true}, key(t, "k1", secretA)).Encode([]*commonpb.Payload{big})
	require.NoError(t, err)
	require.Less(t, len(small[0].Data)*10, len(plain[0].Data))
	// A codec without compression still reads compressed payloads.
	dec, err := ring(t, Options{}, key(t, "k1", secretA)).Decode(small)
	require.NoError(t, err)
	require.True(t, proto.Equal(big, dec[0]))
}

func TestRotation(t *testing.T) {
	k1, k2 := key(t, "k1", secretA), key(t, "k2", secretB)
	before := ring(t, Options{}, k1)
	old, err := before.Encode([]*commonpb.Payload{transfer(t)})
	require.NoError(t, err)

	// k2 became first: new payloads are written under k2, old ones still read.
	after := ring(t, Options{}, k2, k1)
	dec, err := after.Decode(old)
	require.NoError(t, err)
	require.True(t, proto.Equal(transfer(t), dec[0]))
	fresh, err := after.Encode([]*commonpb.Payload{transfer(t)})
	require.NoError(t, err)
	require.Equal(t, "k2", string(fresh[0].Metadata[MetadataKeyID]))
	_, err = before.Decode(fresh)
	require.EqualError(t, err, `payload is encrypted with key "k2", which is not among the configured keys (k1)`)

	// k1 retired: its payloads are no longer readable, and the error says which key they need.
	retired := ring(t, Options{}, k2)
	_, err = retired.Decode(old)
	var unknown *UnknownKeyError
	require.ErrorAs(t, err, &unknown)
	require.Equal(t, "k1", unknown.KeyID)
}

func TestDecodeRefusals(t *testing.T) {
	c := ring(t, Options{}, key(t, "k1", secretA), key(t, "k2", secretB))
	encrypted := func(t *testing.T) *commonpb.Payload {
		enc, err := c.Encode([]*commonpb.Payload{transfer(t)})
		require.NoError(t, err)
		return enc[0]
	}
	tests := []struct {
		name    string
		codec   *Codec
		mangle  func(p *commonpb.Payload)
		wantErr string
	}{
		{"unknown key id", c, func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k9") },
			`payload is encrypted with key "k9", which is not among the configured keys (k1, k2)`},
		{"no key configured", ring(t, Options{}), func(*commonpb.Payload) {},
			`payload is encrypted with key "k1" and no key is configured (set SAGAFLOW_CODEC_KEYS to a key file holding it)`},
		{"no key id", c, func(p *commonpb.Payload) { delete(p.Metadata, MetadataKeyID) }, "encrypted payload without a key id"},
		{"tampered ciphertext", c, func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 },
			`payload under key "k1" failed authentication (tampered, or written with a different key of that id)`},
		{"tampered nonce", c, func(p *commonpb.Payload) { p.Data[0] ^= 1 }, `payload under key "k1" failed authentication`},
		{"relabelled with another known key", c, func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k2") },
			`payload under key "k2" failed authentication`},
		{"truncated", c, func(p *commonpb.Payload) { p.Data = p.Data[:10] }, `payload under key "k1" failed authentication`},
		{"same id, other secret", ring(t, Options{}, key(t, "k1", secretB)), func(*commonpb.Payload) {}, `payload under key "k1" failed authentication`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := encrypted(t)
			tt.mangle(p)
			out, err := tt.codec.Decode([]*commonpb.Payload{p})
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, out, "never plaintext with an error")
		})
	}
}

func TestNoncesAreUnique(t *testing.T) {
	c := ring(t, Options{}, key(t, "k1", secretA))
	const n = 20000
	in := make([]*commonpb.Payload, n)
	for i := range in {
		in[i] = transfer(t)
	}
	enc, err := c.Encode(in)
	require.NoError(t, err)
	seen := make(map[string]bool, n)
	for _, p := range enc {
		nonce := string(p.Data[:12])
		require.False(t, seen[nonce], "nonce reused")
		seen[nonce] = true
	}
	require.False(t, bytes.Equal(enc[0].Data[12:], enc[1].Data[12:]), "equal plaintexts give different ciphertexts")
}

func TestEncryptionOffPassesThrough(t *testing.T) {
	c := ring(t, Options{Compress: true})
	require.False(t, c.Enabled())
	in := []*commonpb.Payload{transfer(t)}
	out, err := c.Encode(in)
	require.NoError(t, err)
	require.True(t, proto.Equal(in[0], out[0]))
	out, err = c.Decode(in)
	require.NoError(t, err)
	require.True(t, proto.Equal(in[0], out[0]))
}

func TestDataAndFailureConverters(t *testing.T) {
	c := ring(t, Options{}, key(t, "k1", secretA))
	dc := c.DataConverter()
	type input struct{ Account string }
	p, err := dc.ToPayload(input{"cust-4711"})
	require.NoError(t, err)
	id, encrypted := KeyIDOf(p)
	require.True(t, encrypted)
	require.Equal(t, "k1", id)
	var got input
	require.NoError(t, dc.FromPayload(p, &got))
	require.Equal(t, "cust-4711", got.Account)
	_, encrypted = KeyIDOf(transfer(t))
	require.False(t, encrypted)

	fc := c.FailureConverter()
	f := fc.ErrorToFailure(temporal.NewNonRetryableApplicationError("account cust-4711 is closed", "AccountClosed", nil, "cust-4711"))
	require.Equal(t, "Encoded failure", f.GetMessage(), "the message travels encrypted")
	require.NotContains(t, f.String(), "cust-4711")
	back := fc.FailureToError(f)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(back, &appErr))
	require.Equal(t, "AccountClosed", appErr.Type())
	require.Contains(t, appErr.Error(), "account cust-4711 is closed")
	// Decoding leaves the failure as it was: the SDK sends a local
	// activity's marker with the failure it decoded for the workflow.
	require.Equal(t, "Encoded failure", f.GetMessage(), "decoded a copy, not the failure itself")
	require.NotContains(t, f.String(), "cust-4711")

	// Encryption off: failures keep their message in the clear.
	off := ring(t, Options{}).FailureConverter().ErrorToFailure(errors.New("plain"))
	require.Equal(t, "plain", off.GetMessage())
}

// TestCompressionIsTheSDKsZlibFormat: compressed payloads read with the
// SDK's own zlib codec and the other way round, over many payloads so the
// pooled writers and readers are reused.
func TestCompressionIsTheSDKsZlibFormat(t *testing.T) {
	sdk := converter.NewZlibCodec(converter.ZlibCodecOptions{})
	ours := &zlibCodec{}
	for i := range 50 {
		in, err := converter.GetDefaultDataConverter().ToPayload(strings.Repeat(fmt.Sprintf("cust-%04d ", i), 20+i))
		require.NoError(t, err)
		enc, err := ours.Encode([]*commonpb.Payload{in})
		require.NoError(t, err)
		require.Equal(t, "binary/zlib", string(enc[0].Metadata[converter.MetadataEncoding]))
		require.Less(t, len(enc[0].Data), len(in.Data), "compressed")
		back, err := sdk.Decode(enc)
		require.NoError(t, err)
		require.True(t, proto.Equal(in, back[0]), "the SDK reads ours")

		sdkEnc, err := sdk.Encode([]*commonpb.Payload{in})
		require.NoError(t, err)
		back, err = ours.Decode(sdkEnc)
		require.NoError(t, err)
		require.True(t, proto.Equal(in, back[0]), "we read the SDK's")
	}
	small, err := converter.GetDefaultDataConverter().ToPayload("x")
	require.NoError(t, err)
	enc, err := ours.Encode([]*commonpb.Payload{small})
	require.NoError(t, err)
	require.Same(t, small, enc[0], "a payload compression would not shrink stays as it is")
	_, err = ours.Decode([]*commonpb.Payload{{Metadata: map[string][]byte{converter.MetadataEncoding: []byte("binary/zlib")}, Data: []byte("not zlib")}})
	require.ErrorContains(t, err, "decompress payload")
}
