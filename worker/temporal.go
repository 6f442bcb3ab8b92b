package main

import (
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/sagaflow/sagaflow/internal/temporaltls"
)

// dialTemporal connects to the Temporal frontend with the configured
// namespace, TLS, metrics and payload codec.
func dialTemporal(cfg config, logger *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	tlsCfg, err := temporaltls.Config{
		CAFile: cfg.TemporalTLSCA, CertFile: cfg.TemporalTLSCert, KeyFile: cfg.TemporalTLSKey, ServerName: cfg.TemporalTLSServer,
	}.Client(cfg.TemporalAddress)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(client.Options{
		HostPort:          cfg.TemporalAddress,
		Namespace:         cfg.TemporalNamespace,
		Logger:            tlog.NewStructuredLogger(logger.With("component", "temporal")),
		MetricsHandler:    metrics,
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg},
		DataConverter:     cfg.Codec.DataConverter(),
		FailureConverter:  cfg.Codec.FailureConverter(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.TemporalAddress, cfg.TemporalNamespace, err)
	}
	return c, nil
}
