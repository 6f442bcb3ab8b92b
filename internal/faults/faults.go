// Package faults injects activity failures into a Temporal worker, for the
// fault tests: a worker interceptor fails activity attempts at random, either
// transiently (a retryable error, which the activity's retry policy absorbs)
// or permanently (a non-retryable error, which fails the step and makes its
// saga compensate).
//
// An injected failure happens before the activity runs, so the attempt has
// no effect. A permanent failure only ever hits an activity's first attempt:
// an activity that can never succeed fails the same way every time, so it
// cannot have taken effect on an earlier attempt, and a saga may rightly take
// it as a step that changed nothing.
//
// Whether an attempt fails is a function of the seed, the workflow id, the
// activity id and the attempt, so a run with the same seed injects the same
// faults whatever the order in which the worker executes activities.
//
// It is for tests only: only a worker built with the tag faults (as the
// fault suite builds it, through internal/systemtest) links it, and installs
// it when SAGAFLOW_ACTIVITY_FAULTS is set; the default build has neither the
// variable nor the flag.
package faults

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
)

// EnvVar is the environment variable the worker reads the fault
// configuration from, in the form Parse accepts.
const EnvVar = "SAGAFLOW_ACTIVITY_FAULTS"

// Application error types of the injected failures.
const (
	// ErrTypeTransient is the type of a retryable injected failure.
	ErrTypeTransient = "InjectedTransientFault"
	// ErrTypePermanent is the type of a non-retryable injected failure.
	ErrTypePermanent = "InjectedPermanentFault"
)

// Config says how often activities fail.
type Config struct {
	// Transient is the probability, from 0 to 1, that an activity attempt
	// fails with a retryable error. Default 0.
	Transient float64
	// Permanent is the probability, from 0 to 1, that an activity's first
	// attempt fails with a non-retryable error. Default 0.
	Permanent float64
	// Seed makes the choice of failing attempts reproducible. Default 0.
	Seed int64
	// Activities, when not empty, are the only activity types that fail;
	// by default every activity may.
	Activities []string
	// PermanentActivities, when not empty, are the only activity types that
	// fail permanently, for example the steps that command a participant,
	// whose failure a saga compensates; by default every activity that may
	// fail may fail permanently.
	PermanentActivities []string
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	for name, p := range map[string]float64{"transient": c.Transient, "permanent": c.Permanent} {
		if math.IsNaN(p) || p < 0 || p > 1 {
			errs = append(errs, fmt.Errorf("faults: %s probability %v is not between 0 and 1", name, p))
		}
	}
	if c.Transient+c.Permanent > 1 {
		errs = append(errs, fmt.Errorf("faults: transient %v and permanent %v add up to more than 1", c.Transient, c.Permanent))
	}
	for _, a := range slices.Concat(c.Activities, c.PermanentActivities) {
		if a == "" {
			errs = append(errs, errors.New("faults: empty activity name"))
		}
	}
	return errors.Join(errs...)
}

// Enabled reports whether the configuration injects any failure.
func (c Config) Enabled() bool { return c.Transient > 0 || c.Permanent > 0 }

// String renders the configuration in the form Parse reads.
func (c Config) String() string {
	s := fmt.Sprintf("transient=%v,permanent=%v,seed=%d", c.Transient, c.Permanent, c.Seed)
	if len(c.Activities) > 0 {
		s += ",activities=" + strings.Join(c.Activities, "|")
	}
	if len(c.PermanentActivities) > 0 {
		s += ",permanent_activities=" + strings.Join(c.PermanentActivities, "|")
	}
	return s
}

// Parse reads a configuration such as
// "transient=0.1,permanent=0.02,seed=42,permanent_activities=Withdraw|Deposit":
// comma-separated key=value pairs, every key optional (keys transient,
// permanent, seed, activities, permanent_activities); activities are
// separated by "|". An empty string is the zero Config (no faults).
func Parse(s string) (Config, error) {
	var c Config
	var errs []error
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		key, value, ok := strings.Cut(kv, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			errs = append(errs, fmt.Errorf("faults: %q is not key=value", kv))
			continue
		}
		var err error
		switch key {
		case "transient":
			c.Transient, err = strconv.ParseFloat(value, 64)
		case "permanent":
			c.Permanent, err = strconv.ParseFloat(value, 64)
		case "seed":
			c.Seed, err = strconv.ParseInt(value, 10, 64)
		case "activities":
			c.Activities = names(value)
		case "permanent_activities":
			c.PermanentActivities = names(value)
		default:
			err = errors.New("unknown key (want transient, permanent, seed, activities or permanent_activities)")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("faults: %s: %w", key, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func names(list string) []string {
	var out []string
	for _, a := range strings.Split(list, "|") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// Stats counts the injected failures. Read the fields with Load.
type Stats struct {
	// Transient counts attempts failed with a retryable error.
	Transient atomic.Int64
	// Permanent counts activities failed with a non-retryable error.
	Permanent atomic.Int64
}

// Injector is the worker interceptor that injects the failures; put it in
// worker.Options.Interceptors.
type Injector struct {
	interceptor.WorkerInterceptorBase
	cfg   Config
	stats Stats
}

var _ interceptor.WorkerInterceptor = (*Injector)(nil)

// New builds an injector.
func New(cfg Config) (*Injector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Injector{cfg: cfg}, nil
}

// Stats returns the injector's counters.
func (i *Injector) Stats() *Stats { return &i.stats }

// InterceptActivity implements interceptor.WorkerInterceptor.
func (i *Injector) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, inj: i}
}

// Kind is what Decide chose for one attempt.
type Kind int

// The outcomes of Decide.
const (
	// None: the attempt runs.
	None Kind = iota
	// Transient: the attempt fails with a retryable error.
	Transient
	// Permanent: the activity fails with a non-retryable error.
	Permanent
)

// Decide says whether the attempt of an activity fails, and how.
func (i *Injector) Decide(activityType, workflowID, activityID string, attempt int32) Kind {
	if !i.cfg.Enabled() || (len(i.cfg.Activities) > 0 && !slices.Contains(i.cfg.Activities, activityType)) {
		return None
	}
	u := i.uniform(workflowID, activityID, attempt)
	switch {
	case attempt == 1 && u < i.cfg.Permanent &&
		(len(i.cfg.PermanentActivities) == 0 || slices.Contains(i.cfg.PermanentActivities, activityType)):
		return Permanent
	case u >= 1-i.cfg.Transient:
		// Drawn from the other end of the interval, so a first attempt that
		// escaped the permanent fault is not thereby more likely to fail
		// transiently.
		return Transient
	default:
		return None
	}
}

// uniform maps the attempt to a number in [0, 1) fixed by the seed.
func (i *Injector) uniform(workflowID, activityID string, attempt int32) float64 {
	h := sha256.New()
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(i.cfg.Seed))
	binary.BigEndian.PutUint32(b[8:], uint32(attempt))
	h.Write(b[:])
	h.Write([]byte(workflowID))
	h.Write([]byte{0})
	h.Write([]byte(activityID))
	sum := h.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	inj *Injector
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	typ := info.ActivityType.Name
	switch a.inj.Decide(typ, info.WorkflowExecution.ID, info.ActivityID, info.Attempt) {
	case Transient:
		a.inj.stats.Transient.Add(1)
		return nil, temporal.NewApplicationError(
			fmt.Sprintf("injected transient fault in %s (attempt %d)", typ, info.Attempt), ErrTypeTransient)
	case Permanent:
		a.inj.stats.Permanent.Add(1)
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("injected permanent fault in %s", typ), ErrTypePermanent, nil)
	}
	return a.Next.ExecuteActivity(ctx, in)
}
