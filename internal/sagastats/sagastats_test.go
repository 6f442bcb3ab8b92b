package sagastats

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
			require.Equal(t, tt.want, Percentile(tt.sorted, tt.p))
		})
	}
}

func TestByTypeCountsEveryOutcomeAndTimesOnlyTheEnded(t *testing.T) {
	samples := []Sample{
		{Type: "transfer", Outcome: Completed, Latency: 3 * time.Millisecond},
		{Type: "transfer", Outcome: Compensated, Latency: 1 * time.Millisecond},
		{Type: "transfer", Outcome: Failed, Latency: 2 * time.Millisecond},
		{Type: "transfer", Outcome: Unfinished},
		{Type: "order", Outcome: NotStarted},
		{Type: "order", Outcome: Completed, Latency: 5 * time.Millisecond},
	}
	rows := ByType(samples, 2*time.Second)
	require.Equal(t, []TypeStats{
		{Type: "order", Counts: Counts{Count: 2, Completed: 1, NotStarted: 1}, Latencies: Latencies{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}, Throughput: 0.5},
		{Type: "transfer", Counts: Counts{Count: 4, Completed: 1, Compensated: 1, Failed: 1, Unfinished: 1},
			Latencies: Latencies{2 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond}, Throughput: 2},
	}, rows)
	require.Equal(t, 1, rows[0].Started())
}

func TestByTypeOfNothingIsEmpty(t *testing.T) {
	require.Empty(t, ByType(nil, time.Second))
}
