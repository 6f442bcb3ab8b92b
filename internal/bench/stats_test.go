package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLatenciesSortsFirst(t *testing.T) {
	l := latencies([]time.Duration{5, 1, 4, 2, 3})
	require.Equal(t, Latencies{P50: 3, P95: 5, P99: 5}, l)
}

func TestRatioOfNothingIsZero(t *testing.T) {
	require.Zero(t, ratio(3, 0))
	require.InDelta(t, 0.5, ratio(1, 2), 1e-9)
}
