package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/contract"
)

// TextOptions tune WriteText.
type TextOptions struct {
	// MaxValue is the longest input, result or error shown, in runes;
	// longer ones are cut with "…". 0 means 160; negative means no limit.
	MaxValue int
	// Location is the time zone times are shown in. Default UTC.
	Location *time.Location
	// TraceURL, when set, turns the trace id into a link to the trace
	// viewer; an empty answer prints none.
	TraceURL func(traceID string) string
}

// WriteText writes the timeline for people: a header with the workflow's
// status, then one line per record with its time, its offset from the
// start, its kind and what happened.
func WriteText(w io.Writer, tl Timeline, opts TextOptions) error {
	if opts.MaxValue == 0 {
		opts.MaxValue = 160
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	t := &textWriter{w: w, opts: opts}
	t.printf("Workflow %s (%s)\n", tl.WorkflowID, tl.WorkflowType)
	if tl.RunID != "" {
		t.printf("  run:     %s\n", tl.RunID)
	}
	status := tl.Status
	if tl.SagaStatus != "" {
		status += ", saga " + tl.SagaStatus
	}
	t.printf("  status:  %s\n", status)
	if !tl.StartTime.IsZero() {
		line := tl.StartTime.In(opts.Location).Format("2006-01-02 15:04:05.000 MST")
		if !tl.CloseTime.IsZero() {
			line += fmt.Sprintf(", closed after %s", roundDuration(tl.CloseTime.Sub(tl.StartTime)))
		}
		t.printf("  started: %s\n", line)
	}
	if line := versionLine(tl); line != "" {
		t.printf("  build:   %s\n", line)
	}
	if tl.TraceID != "" {
		t.printf("  trace:   %s\n", tl.TraceID)
		if opts.TraceURL != nil {
			if u := opts.TraceURL(tl.TraceID); u != "" {
				t.printf("           %s\n", u)
			}
		}
	}
	if tl.Error != "" {
		t.printf("  error:   %s\n", t.cut(tl.Error))
	}
	if len(tl.EncryptedKeys) > 0 {
		t.printf("  note:    payloads are encrypted with key %s, which is not configured here: set %s to a key file holding it\n",
			strings.Join(tl.EncryptedKeys, ", "), codec.EnvKeys)
	}
	t.printf("\n")
	for _, r := range tl.Records {
		t.record(tl.StartTime, r)
	}
	return t.err
}

type textWriter struct {
	w    io.Writer
	opts TextOptions
	err  error
}

func (t *textWriter) printf(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, format, args...)
	}
}

func (t *textWriter) cut(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if t.opts.MaxValue < 0 || utf8.RuneCountInString(s) <= t.opts.MaxValue {
		return s
	}
	r := []rune(s)
	return string(r[:t.opts.MaxValue]) + "…"
}

func (t *textWriter) value(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	return t.cut(string(v))
}

func (t *textWriter) record(start time.Time, r Record) {
	offset := ""
	if !start.IsZero() {
		offset = "+" + roundDuration(r.Time.Sub(start)).String()
	}
	var b strings.Builder
	switch r.Kind {
	case KindStarted:
		b.WriteString(r.Name)
		if r.WorkflowID != "" {
			b.WriteString(" as child of " + r.WorkflowID)
		}
		t.with(&b, "input", t.value(r.Input))
	case KindStatus:
		b.WriteString(r.Status)
	case KindStep, KindCompensation:
		b.WriteString(r.Name)
		if r.Type != "" && r.Type != r.Name {
			b.WriteString(" [" + r.Type + "]")
		}
		if r.Summary != "" {
			b.WriteString(" " + fmt.Sprintf("%q", r.Summary))
		}
		t.with(&b, "input", t.value(r.Input))
		t.outcome(&b, r)
	case KindRetry:
		fmt.Fprintf(&b, "%s attempt %d, after attempt %d failed", r.Name, r.Attempt, r.Attempt-1)
		t.failure(&b, r)
	case KindChild:
		fmt.Fprintf(&b, "%s %s", r.Type, r.WorkflowID)
		t.with(&b, "input", t.value(r.Input))
		t.outcome(&b, r)
		b.WriteString(" (starter history " + r.WorkflowID + ")")
	case KindSignal:
		b.WriteString(r.Name)
		t.with(&b, "payload", t.value(r.Input))
		t.with(&b, "from", r.Identity)
	case KindOperator:
		b.WriteString(r.Name)
		var act contract.OperatorAction
		if json.Unmarshal(r.Input, &act) == nil && (act.Operator != "" || act.Reason != "") {
			fmt.Fprintf(&b, " by %s: %s", orUnknown(act.Operator), t.cut(act.Reason))
		} else {
			t.with(&b, "payload", t.value(r.Input))
		}
		t.with(&b, "from", r.Identity)
	case KindSignalSent:
		fmt.Fprintf(&b, "%s to %s", r.Name, r.WorkflowID)
		t.with(&b, "payload", t.value(r.Input))
		t.outcome(&b, r)
	case KindUpdate:
		b.WriteString(r.Name)
		t.with(&b, "args", t.value(r.Input))
		t.with(&b, "from", r.Identity)
		t.outcome(&b, r)
	case KindTimer:
		b.WriteString(r.Name)
		if r.Summary != "" {
			b.WriteString(" " + fmt.Sprintf("%q", r.Summary))
		}
		var in struct {
			Duration string `json:"duration"`
		}
		if json.Unmarshal(r.Input, &in) == nil && in.Duration != "" {
			b.WriteString(" for " + in.Duration)
		}
		t.outcome(&b, r)
	case KindCancelRequested:
		b.WriteString("cancellation requested")
		t.with(&b, "by", r.Identity)
		t.with(&b, "from workflow", r.WorkflowID)
	case KindClosed:
		b.WriteString(r.Name)
		if v := t.value(r.Result); v != "" {
			b.WriteString(" → " + v)
		}
		t.failure(&b, r)
		if r.RunID != "" {
			b.WriteString(" (new run " + r.RunID + ")")
		}
	default:
		b.WriteString(r.Name)
	}
	t.printf("  %s  %-9s %-13s %s\n", r.Time.In(t.opts.Location).Format("15:04:05.000"), offset, r.Kind, b.String())
}

func (t *textWriter) with(b *strings.Builder, label, v string) {
	if v != "" {
		b.WriteString(" " + label + " " + v)
	}
}

func (t *textWriter) failure(b *strings.Builder, r Record) {
	if r.Error == "" {
		return
	}
	b.WriteString(": " + t.cut(r.Error))
	if r.ErrorType != "" {
		b.WriteString(" [" + r.ErrorType + "]")
	}
}

func (t *textWriter) outcome(b *strings.Builder, r Record) {
	if r.Outcome == "" {
		return
	}
	b.WriteString(" → " + r.Outcome)
	if !r.ClosedAt.IsZero() && r.Kind != KindTimer {
		b.WriteString(" in " + roundDuration(r.ClosedAt.Sub(r.Time)).String())
	}
	if r.Attempt > 1 {
		fmt.Fprintf(b, " (attempt %d)", r.Attempt)
	}
	if v := t.value(r.Result); v != "" {
		b.WriteString(": " + v)
	}
	t.failure(b, r)
	if r.RetryState != "" {
		b.WriteString(" (retry state " + r.RetryState + ")")
	}
	if !r.NextAttempt.IsZero() {
		b.WriteString(", next attempt at " + r.NextAttempt.In(t.opts.Location).Format("15:04:05.000"))
	}
}

// roundDuration keeps durations readable: milliseconds below a minute,
// seconds above.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// versionLine says which builds ran the workflow: "sagaflow:b1 (Pinned)",
// or each build with the events it ran when it moved between builds, or,
// for a workflow that ran no task yet, the build Temporal assigned. Empty
// for an unversioned workflow.
func versionLine(tl Timeline) string {
	name := func(v Version) string {
		if v.Behavior == "" {
			return v.String()
		}
		return v.String() + " (" + v.Behavior + ")"
	}
	switch len(tl.Versions) {
	case 0:
		if tl.Version != nil {
			return name(*tl.Version)
		}
		return ""
	case 1:
		return name(tl.Versions[0])
	}
	parts := make([]string, len(tl.Versions))
	for i, v := range tl.Versions {
		parts[i] = fmt.Sprintf("%s, events %d-%d", name(v), v.FirstEventID, v.LastEventID)
	}
	return strings.Join(parts, "; then ")
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
