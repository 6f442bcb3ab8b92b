// Package temporaltls builds the TLS configuration of a Temporal client from
// PEM files, for the worker and the CLI alike.
package temporaltls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// Config names the PEM files of a Temporal client's TLS. The zero Config
// means plaintext.
type Config struct {
	// CAFile is the CA bundle that signs the Temporal server certificate;
	// setting it turns TLS on. Default: the system roots (when CertFile
	// turns TLS on).
	CAFile string
	// CertFile is the client certificate for mTLS; setting it turns TLS on.
	// It requires KeyFile.
	CertFile string
	// KeyFile is the client certificate's private key; it requires CertFile.
	KeyFile string
	// ServerName is the name verified in the server certificate. Default:
	// the host of the address dialled.
	ServerName string
}

// Client returns the TLS configuration of a client of the Temporal frontend
// at address (host:port): nil (plaintext) unless CAFile or CertFile is set.
// Peer verification is always on. A file that cannot be read or holds no
// usable PEM is an error naming it.
func (c Config) Client(address string) (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil, nil
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("temporal TLS: the client certificate and key go together")
	}
	serverName := c.ServerName
	if serverName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		serverName = host
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal TLS CA %s: no PEM certificate found", c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS client certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
