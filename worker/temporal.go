package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// dialTemporal connects to the Temporal frontend with the configured
// namespace, TLS and metrics.
func dialTemporal(cfg config, logger *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	tlsCfg, err := temporalTLS(cfg)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(client.Options{
		HostPort:          cfg.TemporalAddress,
		Namespace:         cfg.TemporalNamespace,
		Logger:            tlog.NewStructuredLogger(logger.With("component", "temporal")),
		MetricsHandler:    metrics,
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.TemporalAddress, cfg.TemporalNamespace, err)
	}
	return c, nil
}

// temporalTLS builds the client TLS configuration: nil (plaintext) unless a
// CA or a client certificate is given; peer verification is always on.
func temporalTLS(cfg config) (*tls.Config, error) {
	if cfg.TemporalTLSCA == "" && cfg.TemporalTLSCert == "" {
		return nil, nil
	}
	serverName := cfg.TemporalTLSServer
	if serverName == "" {
		host, _, err := net.SplitHostPort(cfg.TemporalAddress)
		if err != nil {
			host = cfg.TemporalAddress
		}
		serverName = host
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if cfg.TemporalTLSCA != "" {
		pem, err := os.ReadFile(cfg.TemporalTLSCA)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA %s: no PEM certificate found", cfg.TemporalTLSCA)
		}
		t.RootCAs = pool
	}
	if cfg.TemporalTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
