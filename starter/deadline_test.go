package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDeadline(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "", want: time.Time{}},
		{in: "6h", want: now.Add(6 * time.Hour)},
		{in: "2026-12-24T18:00:00+01:00", want: time.Date(2026, 12, 24, 17, 0, 0, 0, time.UTC)},
		{in: "0s", wantErr: "must be positive"},
		{in: "-1h", wantErr: "must be positive"},
		{in: "2026-12-01T00:00:00Z", wantErr: "is not in the future"},
		{in: "tomorrow", wantErr: "want a duration such as 6h or an RFC 3339 time"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDeadline(tc.in, now)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				var ue *usageError
				require.ErrorAs(t, err, &ue, "a usage error: one line, exit code 2")
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want.Equal(got), "got %s", got)
		})
	}
}

func TestPendingLineSaysUntilWhenAStepIsRetried(t *testing.T) {
	until := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	got := pendingLine(pendingView{ActivityType: "Withdraw", State: "PENDING_ACTIVITY_STATE_SCHEDULED", Attempt: 7,
		LastFailure: "publish ledger.withdraw: connection refused", RetriesUntil: until})
	require.Equal(t, "waiting: Withdraw attempt 7 (scheduled), last failure: publish ledger.withdraw: connection refused, retries until 2026-12-02 14:00:00Z", got)
	require.Equal(t, "pending: Deposit started, attempt 1", pendingLine(pendingView{ActivityType: "Deposit", State: "PENDING_ACTIVITY_STATE_STARTED", Attempt: 1}))
}
