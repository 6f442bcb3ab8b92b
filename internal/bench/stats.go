package main

import (
	"time"

	"github.com/sagaflow/sagaflow/internal/sagastats"
)

// Latencies are the start-to-result percentiles of a row, computed as
// `starter load` and the soak compute theirs (internal/sagastats).
type Latencies = sagastats.Latencies

// latencies sorts d in place and returns its percentiles.
func latencies(d []time.Duration) Latencies { return sagastats.Of(d) }

// ratio is a/b, or 0 when b is 0 (a row that did not run).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
