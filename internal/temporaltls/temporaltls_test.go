package temporaltls_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/temporaltls"
)

// pki is a CA with a server certificate for temporal.test and 127.0.0.1 and
// a client certificate, written as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	otherKey                                             string // a key that matches no certificate
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	newKey := func(name string) (*ecdsa.PrivateKey, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		der, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		return k, write(name, "EC PRIVATE KEY", der)
	}
	caKey, _ := newKey("ca-key.pem")
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, keyFile := newKey(name + "-key.pem")
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			DNSNames: []string{"temporal.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		require.NoError(t, err)
		return write(name+".pem", "CERTIFICATE", der), keyFile
	}
	p := pki{caFile: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	_, p.otherKey = newKey("other-key.pem")
	return p
}

func TestPlaintextUnlessACAOrACertificateIsSet(t *testing.T) {
	cfg, err := temporaltls.Config{ServerName: "temporal.test"}.Client("temporal.test:7233")
	require.NoError(t, err)
	require.Nil(t, cfg)
}

func TestClientConfig(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name       string
		cfg        temporaltls.Config
		address    string
		serverName string
		clientCert bool
		customCA   bool
	}{
		{"CA only", temporaltls.Config{CAFile: p.caFile}, "temporal.test:7233", "temporal.test", false, true},
		{"mTLS", temporaltls.Config{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}, "temporal.test:7233", "temporal.test", true, true},
		{"client certificate with the system roots", temporaltls.Config{CertFile: p.clientCert, KeyFile: p.clientKey}, "temporal.test:7233", "temporal.test", true, false},
		{"server name given", temporaltls.Config{CAFile: p.caFile, ServerName: "frontend.internal"}, "10.0.0.5:7233", "frontend.internal", false, true},
		{"address without a port", temporaltls.Config{CAFile: p.caFile}, "temporal.test", "temporal.test", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.Client(tc.address)
			require.NoError(t, err)
			require.NotNil(t, cfg)
			require.Equal(t, tc.serverName, cfg.ServerName)
			require.False(t, cfg.InsecureSkipVerify, "peer verification is always on")
			require.GreaterOrEqual(t, cfg.MinVersion, uint16(tls.VersionTLS12))
			require.Equal(t, tc.customCA, cfg.RootCAs != nil)
			if tc.clientCert {
				require.Len(t, cfg.Certificates, 1)
			} else {
				require.Empty(t, cfg.Certificates)
			}
		})
	}
}

func TestBadFilesAreOneClearError(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	cases := []struct {
		name string
		cfg  temporaltls.Config
		want []string
	}{
		{"missing CA", temporaltls.Config{CAFile: missing}, []string{"temporal TLS CA", missing, "no such file"}},
		{"CA without PEM", temporaltls.Config{CAFile: notPEM}, []string{"temporal TLS CA " + notPEM, "no PEM certificate found"}},
		{"missing client certificate", temporaltls.Config{CAFile: p.caFile, CertFile: missing, KeyFile: p.clientKey}, []string{"temporal TLS client certificate " + missing}},
		{"key of another certificate", temporaltls.Config{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.otherKey}, []string{"temporal TLS client certificate " + p.clientCert + " and key " + p.otherKey, "private key does not match"}},
		{"certificate without key", temporaltls.Config{CertFile: p.clientCert}, []string{"client certificate and key go together"}},
		{"key without certificate", temporaltls.Config{KeyFile: p.clientKey}, []string{"client certificate and key go together"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.Client("temporal.test:7233")
			require.Nil(t, cfg)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestHandshakeWithAServerThatRequiresClientCertificates: the configuration
// verifies the server against the CA under the server name, and presents the
// client certificate the server demands.
func TestHandshakeWithAServerThatRequiresClientCertificates(t *testing.T) {
	p := newPKI(t)
	serverCert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(p.caFile)
	require.NoError(t, err)
	clients := x509.NewCertPool()
	require.True(t, clients.AppendCertsFromPEM(caPEM))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("ok"))
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	handshake := func(cfg temporaltls.Config) error {
		tlsCfg, err := cfg.Client(addr)
		require.NoError(t, err)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlsCfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		// With TLS 1.3 the server's verdict on the client certificate
		// arrives after the client's handshake: the server writes "ok"
		// once it accepted the client.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 2)
		if _, err := io.ReadFull(conn, got); err != nil {
			return err
		}
		require.Equal(t, "ok", string(got))
		return nil
	}

	require.NoError(t, handshake(temporaltls.Config{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}))
	require.NoError(t, handshake(temporaltls.Config{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: "temporal.test"}),
		"the certificate also names temporal.test")

	err = handshake(temporaltls.Config{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: "elsewhere.test"})
	require.ErrorContains(t, err, "elsewhere.test", "a server name the certificate does not hold is refused")

	err = handshake(temporaltls.Config{CAFile: p.caFile})
	require.ErrorContains(t, err, "certificate required", "the server demands a client certificate")
}
