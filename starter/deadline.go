package main

import (
	"strings"
	"time"
)

// deadlineFlagUsage is the help of every start command's --deadline.
const deadlineFlagUsage = "until when a step that fails for a reason of the infrastructure (broker or service down) is retried before the saga compensates: " +
	"a duration from now (90m, 6h) or an RFC 3339 time (2026-12-24T18:00:00Z); default the saga type's (%s)"

// parseDeadline reads a --deadline: empty (the saga type's default, a zero
// time), a positive duration from now, or an RFC 3339 time after now.
func parseDeadline(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, usagef("--deadline %s: must be positive", s)
		}
		return now.Add(d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("--deadline %q: want a duration such as 6h or an RFC 3339 time such as 2026-12-24T18:00:00Z", s)
	}
	if !t.After(now) {
		return time.Time{}, usagef("--deadline %s: is not in the future", s)
	}
	return t.UTC(), nil
}
