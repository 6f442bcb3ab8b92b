package main

import (
	"slices"
	"time"
)

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted
// durations: the smallest value with at least p% of the values at or below
// it. An empty slice gives 0.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps p/100*n an exact integer when it should be one
	// (95% of 100 is rank 95, not 96 through float rounding).
	rank := int(p/100*float64(len(sorted)) + 0.999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// Latencies are the start-to-result percentiles of a row.
type Latencies struct {
	P50, P95, P99 time.Duration
}

// latencies sorts d in place and returns its percentiles.
func latencies(d []time.Duration) Latencies {
	slices.Sort(d)
	return Latencies{P50: percentile(d, 50), P95: percentile(d, 95), P99: percentile(d, 99)}
}

// ratio is a/b, or 0 when b is 0 (a row that did not run).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
