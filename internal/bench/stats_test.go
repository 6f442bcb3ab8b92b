package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty is zero", nil, 50, 0},
		{"one value is every percentile", []time.Duration{7}, 99, 7},
		{"p50 of 100 is the 50th", hundred, 50, 50 * time.Millisecond},
		{"p95 of 100 is the 95th, not the 96th", hundred, 95, 95 * time.Millisecond},
		{"p99 of 100 is the 99th", hundred, 99, 99 * time.Millisecond},
		{"p100 is the maximum", hundred, 100, 100 * time.Millisecond},
		{"nearest rank rounds up", []time.Duration{1, 2, 3}, 50, 2},
		{"p99 of 10 is the maximum", hundred[:10], 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, percentile(tt.sorted, tt.p))
		})
	}
}

func TestLatenciesSortsFirst(t *testing.T) {
	l := latencies([]time.Duration{5, 1, 4, 2, 3})
	require.Equal(t, Latencies{P50: 3, P95: 5, P99: 5}, l)
}

func TestRatioOfNothingIsZero(t *testing.T) {
	require.Zero(t, ratio(3, 0))
	require.InDelta(t, 0.5, ratio(1, 2), 1e-9)
}
