// Package sagastats is the statistics every saga load reports the same
// way: `make bench`, `starter load` and `make soak`. It gives nearest-rank
// latency percentiles and, per saga type, how many sagas ended how.
package sagastats

import (
	"slices"
	"time"
)

// Percentile is the nearest-rank percentile p (0 < p <= 100) of sorted
// durations: the smallest value with at least p% of the values at or below
// it. An empty slice gives 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps p/100*n an exact integer when it should be one
	// (95% of 100 is rank 95, not 96 through float rounding).
	rank := int(p/100*float64(len(sorted)) + 0.999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// Latencies are the start-to-result percentiles of a set of sagas.
type Latencies struct {
	P50, P95, P99 time.Duration
}

// Of sorts d in place and returns its percentiles.
func Of(d []time.Duration) Latencies {
	slices.Sort(d)
	return Latencies{P50: Percentile(d, 50), P95: Percentile(d, 95), P99: Percentile(d, 99)}
}

// Outcome is how one saga of a load ended.
type Outcome string

// Outcomes of a saga. NotStarted is a saga the load never started and
// Unfinished one it started but stopped waiting for (the load was stopped
// first): neither is a success or a failure of the system.
const (
	Completed   Outcome = "completed"
	Compensated Outcome = "compensated"
	Failed      Outcome = "failed"
	Unfinished  Outcome = "unfinished"
	NotStarted  Outcome = "not started"
)

// Sample is one saga of a load: its type, how it ended and, unless it was
// not started, how long it took from start to result.
type Sample struct {
	Type    string
	Outcome Outcome
	Latency time.Duration
}

// Counts are how many sagas ended how.
type Counts struct {
	// Count is every saga, NotStarted included.
	Count       int `json:"count"`
	Completed   int `json:"completed"`
	Compensated int `json:"compensated"`
	Failed      int `json:"failed"`
	Unfinished  int `json:"unfinished"`
	NotStarted  int `json:"not_started"`
}

// Started is the number of sagas that were started.
func (c Counts) Started() int { return c.Count - c.NotStarted }

// TypeStats is the row of one saga type.
type TypeStats struct {
	Type string `json:"type"`
	Counts
	// Latencies are over the sagas that ended (completed, compensated or
	// failed).
	Latencies Latencies `json:"-"`
	// Throughput is the started sagas of the type per second of the load.
	Throughput float64 `json:"throughput_per_s"`
}

// ByType groups samples by saga type, sorted by type name, over a load
// that took elapsed.
func ByType(samples []Sample, elapsed time.Duration) []TypeStats {
	rows := map[string]*TypeStats{}
	lat := map[string][]time.Duration{}
	for _, s := range samples {
		t := rows[s.Type]
		if t == nil {
			t = &TypeStats{Type: s.Type}
			rows[s.Type] = t
		}
		t.Count++
		switch s.Outcome {
		case Completed:
			t.Completed++
		case Compensated:
			t.Compensated++
		case NotStarted:
			t.NotStarted++
			continue
		case Unfinished:
			t.Unfinished++
			continue
		default:
			t.Failed++
		}
		lat[s.Type] = append(lat[s.Type], s.Latency)
	}
	out := make([]TypeStats, 0, len(rows))
	for typ, t := range rows {
		t.Latencies = Of(lat[typ])
		if secs := elapsed.Seconds(); secs > 0 {
			t.Throughput = float64(t.Started()) / secs
		}
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b TypeStats) int {
		switch {
		case a.Type < b.Type:
			return -1
		case a.Type > b.Type:
			return 1
		}
		return 0
	})
	return out
}
