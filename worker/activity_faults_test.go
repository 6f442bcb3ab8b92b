//go:build faults

package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/faults"
)

func TestActivityFaultsAreOffUnlessSet(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.False(t, cfg.ActivityFaults.Enabled())

	cfg, err = parseConfig(nil, env(map[string]string{faults.EnvVar: "transient=0.1,permanent=0.02,seed=42"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, faults.Config{Transient: 0.1, Permanent: 0.02, Seed: 42}, cfg.ActivityFaults)

	var out bytes.Buffer
	_, err = parseConfig([]string{"--help"}, env(nil), &out)
	require.True(t, errors.Is(err, flag.ErrHelp))
	require.Contains(t, out.String(), faults.EnvVar)
	require.Contains(t, out.String(), "FOR FAULT TESTS ONLY")
}

func TestActivityFaultsRejectBadInput(t *testing.T) {
	_, err := parseConfig(nil, env(map[string]string{faults.EnvVar: "transient=2"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "--activity-faults")
}

func TestFaultInjectorIsInstalledAndCountedWhenSet(t *testing.T) {
	p := &process{logger: slog.New(slog.DiscardHandler), registry: prometheus.NewRegistry()}
	none, err := p.faultInjector()
	require.NoError(t, err)
	require.Empty(t, none, "no faults configured: no interceptor")

	p.cfg.ActivityFaults = faults.Config{Transient: 0.5, Seed: 1}
	interceptors, err := p.faultInjector()
	require.NoError(t, err)
	require.Len(t, interceptors, 1)
	require.IsType(t, &faults.Injector{}, interceptors[0])

	families, err := p.registry.Gather()
	require.NoError(t, err)
	var kinds []string
	for _, f := range families {
		if f.GetName() != "sagaflow_injected_activity_faults_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				kinds = append(kinds, l.GetName()+"="+l.GetValue())
			}
		}
	}
	require.ElementsMatch(t, []string{"kind=transient", "kind=permanent"}, kinds, strings.Join(kinds, ","))
}
