package amqp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// writeTestPKI writes a throwaway CA and a client certificate signed by it.
func writeTestPKI(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sagaflow test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	clientTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "sagaflow-worker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, caCert, &clientKey.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	require.NoError(t, err)

	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "client.pem")
	keyFile = filepath.Join(dir, "client-key.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return caFile, certFile, keyFile
}

func TestClientTLS(t *testing.T) {
	caFile, certFile, keyFile := writeTestPKI(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))
	missing := filepath.Join(t.TempDir(), "missing.pem")

	tests := []struct {
		name      string
		url       string
		tls       TLSConfig
		wantErr   string
		wantCerts int
		wantNil   bool
	}{
		{name: "plain amqp has no TLS", url: "amqp://guest:guest@broker.example:5672/", wantNil: true},
		{name: "CA only", url: "amqps://u:p@broker.example:5671/", tls: TLSConfig{CAFile: caFile}},
		{name: "CA and client certificate", url: "amqps://u:p@broker.example/", tls: TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, wantCerts: 1},
		{name: "missing CA file", url: "amqps://broker.example/", tls: TLSConfig{CAFile: missing}, wantErr: "read CA file"},
		{name: "invalid CA file", url: "amqps://broker.example/", tls: TLSConfig{CAFile: garbage}, wantErr: "holds no PEM certificate"},
		{name: "certificate without key", url: "amqps://broker.example/", tls: TLSConfig{CAFile: caFile, CertFile: certFile}, wantErr: "without a key file"},
		{name: "key without certificate", url: "amqps://broker.example/", tls: TLSConfig{CAFile: caFile, KeyFile: keyFile}, wantErr: "without a certificate file"},
		{name: "invalid client certificate", url: "amqps://broker.example/", tls: TLSConfig{CertFile: garbage, KeyFile: keyFile}, wantErr: "load client certificate"},
		{name: "missing client key", url: "amqps://broker.example/", tls: TLSConfig{CertFile: certFile, KeyFile: missing}, wantErr: "load client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Config{URL: tt.url, TLS: tt.tls}.clientTLS(tt.url)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.wantNil {
				require.Nil(t, cfg)
				return
			}
			require.NotNil(t, cfg)
			require.Equal(t, "broker.example", cfg.ServerName)
			require.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
			require.False(t, cfg.InsecureSkipVerify)
			require.NotNil(t, cfg.RootCAs)
			require.Len(t, cfg.Certificates, tt.wantCerts)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{name: "defaults are valid", cfg: Config{}},
		{name: "bad url", cfg: Config{URL: "http://x"}, wantErr: []string{"url"}},
		{name: "tls files on plain amqp", cfg: Config{URL: "amqp://h/", TLS: TLSConfig{CAFile: "ca.pem"}}, wantErr: []string{"not amqps"}},
		{name: "cert without key", cfg: Config{URL: "amqps://h/", TLS: TLSConfig{CertFile: "c.pem"}}, wantErr: []string{"without a key file"}},
		{
			name:    "every problem at once",
			cfg:     Config{ReconnectInitial: time.Second, ReconnectMax: time.Millisecond, Exchange: "x", DeadLetterExchange: "x"},
			wantErr: []string{"below the initial delay", "both \"x\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			for _, w := range tt.wantErr {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestURLFromEnv(t *testing.T) {
	require.Equal(t, DefaultURL, URLFromEnv(func(string) string { return "" }))
	require.Equal(t, "amqps://b/", URLFromEnv(func(k string) string {
		require.Equal(t, EnvURL, k)
		return "amqps://b/"
	}))
}

func TestConsumerConfigValidate(t *testing.T) {
	require.ErrorContains(t, ConsumerConfig{}.Validate(), "name is required")
	require.NoError(t, ConsumerConfig{Name: "ledger"}.Validate())
	err := ConsumerConfig{Name: "q", Prefetch: -1, Backoff: BackoffConfig{Initial: time.Second, Max: time.Millisecond}}.Validate()
	require.ErrorContains(t, err, "prefetch")
	require.ErrorContains(t, err, "backoff max")
}

func TestBackoffDelay(t *testing.T) {
	b := BackoffConfig{Initial: 200 * time.Millisecond, Multiplier: 2, Max: time.Second}
	require.Equal(t, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second},
		[]time.Duration{b.Delay(1), b.Delay(2), b.Delay(3), b.Delay(4)})
}

func TestMemoryDedup(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1000, 0)
	d := NewMemoryDedup(2)
	d.now = func() time.Time { return now }

	claim := func(id string) ClaimResult {
		r, err := d.Claim(ctx, id)
		require.NoError(t, err)
		return r
	}
	require.Equal(t, ClaimAcquired, claim("a"))
	require.Equal(t, ClaimBusy, claim("a"), "a concurrent duplicate must not run")
	require.NoError(t, d.Release(ctx, "a"))
	require.Equal(t, ClaimAcquired, claim("a"), "a failed handling stays retryable")
	require.NoError(t, d.Complete(ctx, "a", time.Minute))
	require.Equal(t, ClaimDuplicate, claim("a"))

	now = now.Add(2 * time.Minute)
	require.Equal(t, ClaimAcquired, claim("a"), "the window expired")
	require.NoError(t, d.Complete(ctx, "a", time.Minute))

	for _, id := range []string{"b", "c"} {
		require.Equal(t, ClaimAcquired, claim(id))
		require.NoError(t, d.Complete(ctx, id, time.Hour))
	}
	require.Equal(t, 2, d.Len(), "bounded to its capacity")
	require.Equal(t, ClaimAcquired, claim("a"), "the oldest id was evicted")
	require.Equal(t, ClaimDuplicate, claim("c"))
}

// An id whose window passed is forgotten at the next completion instead of
// waiting for the capacity to push it out: a consumer with a short window
// holds only the ids of that window.
func TestMemoryDedupForgetsIDsOnceTheirWindowPassed(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1000, 0)
	d := NewMemoryDedup(100_000)
	d.now = func() time.Time { return now }
	for i := range 5000 {
		id := fmt.Sprintf("m-%d", i)
		_, err := d.Claim(ctx, id)
		require.NoError(t, err)
		require.NoError(t, d.Complete(ctx, id, time.Minute))
		now = now.Add(time.Millisecond)
	}
	require.Equal(t, 5000, d.Len(), "every id within its window is remembered")

	now = now.Add(time.Minute)
	_, err := d.Claim(ctx, "late")
	require.NoError(t, err)
	require.NoError(t, d.Complete(ctx, "late", time.Minute))
	require.Equal(t, 1, d.Len(), "only the id still within its window")
	require.Equal(t, 1, len(d.order)-d.head, "the completion order forgets them too")
	res, err := d.Claim(ctx, "m-4999")
	require.NoError(t, err)
	require.Equal(t, ClaimAcquired, res)
}

// The store every consumer gets by default stays within a few MB however
// many messages it sees: it is one per consumer in every worker process.
func TestMemoryDedupDefaultStaysSmall(t *testing.T) {
	ctx := t.Context()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := NewMemoryDedup(0)
	for range 150_000 {
		id := uuid.NewString() // the shape of an envelope id
		_, err := d.Claim(ctx, id)
		require.NoError(t, err)
		require.NoError(t, d.Complete(ctx, id, 24*time.Hour))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Equal(t, DefaultDedupCapacity, d.Len())
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	require.Less(t, grown, int64(4<<20), "%d ids take %d bytes", d.Len(), grown)
	runtime.KeepAlive(d)
}

func TestPermanent(t *testing.T) {
	require.NoError(t, Permanent(nil))
	base := os.ErrNotExist
	err := Permanent(base)
	require.True(t, IsPermanent(err))
	require.ErrorIs(t, err, base)
	require.False(t, IsPermanent(base))
}

func TestNoDedupLetsEveryDeliveryThrough(t *testing.T) {
	var d DedupStore = NoDedup{}
	for range 2 {
		res, err := d.Claim(t.Context(), "m-1")
		require.NoError(t, err)
		require.Equal(t, ClaimAcquired, res)
		require.NoError(t, d.Complete(t.Context(), "m-1", time.Minute))
	}
}

func TestConfigValidateQueueTypeAndNodes(t *testing.T) {
	require.NoError(t, Config{URL: "amqp://a/,amqp://b/", QueueType: QueueClassic}.Validate())
	err := Config{QueueType: "stream", DeliveryLimit: -1}.Validate()
	require.ErrorContains(t, err, `queue type "stream": want quorum or classic`)
	require.ErrorContains(t, err, "delivery limit -1 is below 1")
	err = Config{URL: "amqps://a/,amqp://u:pw@b/", TLS: TLSConfig{CAFile: "ca.pem"}}.Validate()
	require.ErrorContains(t, err, "url scheme of amqp://u:***@b/ is not amqps")
	c := Config{}
	c.setDefaults()
	require.Equal(t, QueueQuorum, c.QueueType)
	require.Equal(t, DefaultDeliveryLimit, c.DeliveryLimit)
}
