package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/services/inventory"
	"github.com/sagaflow/sagaflow/services/ledger"
)

// TestServicePartsExposeTheirOutboxBacklog: the ledger and inventory parts
// put their outbox backlog on the worker's /metrics, by producer.
func TestServicePartsExposeTheirOutboxBacklog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := parseConfig([]string{"--run", "ledger,inventory"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	dir := t.TempDir()
	cfg.LedgerDSN, cfg.InventoryDSN = filepath.Join(dir, "ledger.db"), filepath.Join(dir, "inventory.db")
	p := &process{cfg: cfg, logger: slog.New(slog.DiscardHandler), registry: prometheus.NewPedanticRegistry()}
	t.Cleanup(p.close)
	_, err = p.ledger(ctx)
	require.NoError(t, err)
	_, err = p.inventory(ctx)
	require.NoError(t, err)

	families, err := p.registry.Gather()
	require.NoError(t, err)
	backlog := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sagaflow_outbox_pending" {
			continue
		}
		for _, m := range f.GetMetric() {
			backlog[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, map[string]float64{ledger.ServiceName: 0, inventory.ServiceName: 0}, backlog)
}

// TestPprofOnlyWhenAsked: the runtime profiles are served beside /metrics
// with --pprof, and not without it.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		args := []string{"--run", "notifications"}
		if on {
			args = append(args, "--pprof")
		}
		cfg, err := parseConfig(args, env(nil), &bytes.Buffer{})
		require.NoError(t, err)
		require.Equal(t, on, cfg.Pprof)
		p := &process{cfg: cfg, logger: slog.New(slog.DiscardHandler), registry: prometheus.NewPedanticRegistry()}
		srv := httptest.NewServer(p.httpHandler())
		res, err := http.Get(srv.URL + "/debug/pprof/heap?debug=1")
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		res.Body.Close()
		srv.Close()
		if on {
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Contains(t, string(body), "heap profile")
		} else {
			require.Equal(t, http.StatusNotFound, res.StatusCode)
		}
	}
}
