package workflows

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/contract"
)

// StepFunc runs one step of a saga on the workflow context.
type StepFunc func(ctx workflow.Context) error

// CompensationFunc undoes one step. It runs on a disconnected context, so it
// still runs when the workflow was cancelled; it should be idempotent.
type CompensationFunc func(ctx workflow.Context) error

// SagaOptions tunes how a saga compensates. The zero value is valid:
// sequential compensation in reverse order, stopping at the first failure.
type SagaOptions struct {
	// ParallelCompensation runs all compensations at once instead of in
	// reverse order; use it only when they do not depend on each other.
	// Default false.
	ParallelCompensation bool
	// ContinueOnCompensationError runs the remaining compensations after one
	// failed instead of stopping. Default false.
	ContinueOnCompensationError bool
	// StepNotApplied reports whether a step's error proves that the step
	// changed nothing, so its compensation is dropped. Default IsRejection:
	// a non-retryable application error, the way activities report business
	// rejections. Any other error (a timeout in particular) keeps the
	// compensation, because the step may have taken effect.
	StepNotApplied func(err error) bool
}

// IsRejection reports whether err is a non-retryable application error: a
// business rejection by a participant, which changed nothing.
func IsRejection(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

// FailedCompensation names a compensation that failed and its error.
type FailedCompensation struct {
	Name string
	Err  error
}

// CompensationError is returned by Saga.Compensate when compensations failed
// and an operator resolved the saga: it names the original failure and every
// compensation that failed, so neither is lost.
type CompensationError struct {
	// Cause is the failure that made the saga compensate.
	Cause error
	// Failed are the compensations that failed in the last run.
	Failed []FailedCompensation
	// Resolution is who resolved the saga and why.
	Resolution contract.OperatorAction
}

// Error names the cause and each failed compensation.
func (e *CompensationError) Error() string {
	parts := make([]string, 0, len(e.Failed))
	for _, f := range e.Failed {
		parts = append(parts, fmt.Sprintf("%s: %v", f.Name, f.Err))
	}
	return fmt.Sprintf("saga failed (%v) and compensations failed (%s); resolved by %s: %s",
		e.Cause, strings.Join(parts, "; "), e.Resolution.Operator, e.Resolution.Reason)
}

// Unwrap returns the cause and every compensation error, for errors.Is/As.
func (e *CompensationError) Unwrap() []error {
	errs := []error{e.Cause}
	for _, f := range e.Failed {
		errs = append(errs, f.Err)
	}
	return errs
}

type compensation struct {
	name string
	fn   CompensationFunc
}

// Saga runs the steps of one workflow and, when a step fails or the workflow
// is cancelled, undoes the completed ones in reverse order. Create it with
// NewSaga at the start of the workflow.
//
// A compensation is registered before its step runs: a step that timed out
// after it took effect is still undone, so compensations must tolerate
// undoing something that did not happen (they are usually built on the same
// deterministic command ids as the steps).
type Saga struct {
	opts  SagaOptions
	state contract.SagaState
	comps []compensation
}

// NewSaga creates the saga of the calling workflow, registers the
// contract.QueryStatus query and sets contract.SagaStatus to Running.
func NewSaga(ctx workflow.Context, opts SagaOptions) (*Saga, error) {
	if opts.StepNotApplied == nil {
		opts.StepNotApplied = IsRejection
	}
	s := &Saga{opts: opts, state: contract.SagaState{CompletedSteps: []string{}, Compensations: []contract.CompensationState{}}}
	if err := workflow.SetQueryHandler(ctx, contract.QueryStatus, func() (contract.SagaState, error) {
		return s.State(), nil
	}); err != nil {
		return nil, fmt.Errorf("register %s query: %w", contract.QueryStatus, err)
	}
	if err := s.setStatus(ctx, contract.StatusRunning); err != nil {
		return nil, err
	}
	workflow.GetMetricsHandler(ctx).WithTags(metricTags(ctx)).Counter(contract.MetricSagaStarted).Inc(1)
	return s, nil
}

// metricTags are the tags of a saga metric: the saga type and the
// label/value pairs kv.
//
// The saga metrics are recorded here, in the helper every saga runs on,
// rather than by a worker interceptor around ExecuteWorkflow: only the
// helper knows the status a saga ends in (an interceptor sees a result
// whose meaning differs from saga to saga) and when it is parked waiting
// for an operator, which is no end at all. The workflow's metrics handler
// (workflow.GetMetricsHandler) keeps this deterministic and counted once:
// the SDK drops what is recorded while a history is replayed (a worker
// rebuilding a saga after a cache eviction or a restart counts nothing
// twice), and a metric adds no command to the history.
func metricTags(ctx workflow.Context, kv ...string) map[string]string {
	tags := map[string]string{contract.MetricTagSagaType: workflow.GetInfo(ctx).WorkflowType.Name}
	for i := 0; i+1 < len(kv); i += 2 {
		tags[kv[i]] = kv[i+1]
	}
	return tags
}

// recordStatus records the saga metrics of a status just set: an end
// (with the saga's duration) or a parking.
func (s *Saga) recordStatus(ctx workflow.Context, status contract.SagaStatus) {
	switch status {
	case contract.StatusCompleted, contract.StatusCompensated, contract.StatusCancelled, contract.StatusResolved:
		m := workflow.GetMetricsHandler(ctx).WithTags(metricTags(ctx, contract.MetricTagOutcome, strings.ToLower(string(status))))
		m.Counter(contract.MetricSagaEnded).Inc(1)
		m.Timer(contract.MetricSagaDuration).Record(workflow.Now(ctx).Sub(workflow.GetInfo(ctx).WorkflowStartTime))
	case contract.StatusCompensationFailed:
		workflow.GetMetricsHandler(ctx).WithTags(metricTags(ctx)).Counter(contract.MetricSagaParked).Inc(1)
	}
}

// State returns a copy of the saga's progress.
func (s *Saga) State() contract.SagaState {
	st := s.state
	st.CompletedSteps = append([]string{}, s.state.CompletedSteps...)
	st.Compensations = append([]contract.CompensationState{}, s.state.Compensations...)
	st.Retries = append([]contract.OperatorAction(nil), s.state.Retries...)
	return st
}

func (s *Saga) setStatus(ctx workflow.Context, status contract.SagaStatus) error {
	s.state.Status = status
	if err := workflow.UpsertTypedSearchAttributes(ctx, contract.SagaStatusKey.ValueSet(string(status))); err != nil {
		return fmt.Errorf("upsert contract.SagaStatus %s: %w", status, err)
	}
	s.recordStatus(ctx, status)
	return nil
}

// AddCompensation registers the compensation of a step about to run.
func (s *Saga) AddCompensation(name string, fn CompensationFunc) {
	s.comps = append(s.comps, compensation{name: name, fn: fn})
	s.state.Compensations = append(s.state.Compensations, contract.CompensationState{Name: name, Status: contract.CompensationRegistered})
}

// Step registers compensate (when not nil) and then runs step. If step fails
// with an error that proves it changed nothing (SagaOptions.StepNotApplied),
// the compensation is dropped again. The caller decides what a failure
// means: usually it calls Compensate.
func (s *Saga) Step(ctx workflow.Context, name string, step StepFunc, compensate CompensationFunc) error {
	idx := -1
	if compensate != nil {
		s.AddCompensation(name, compensate)
		idx = len(s.comps) - 1
	}
	s.state.CurrentStep = name
	err := step(ctx)
	s.state.CurrentStep = ""
	if err != nil {
		if idx >= 0 && s.opts.StepNotApplied(err) {
			s.comps[idx].fn = nil
			s.state.Compensations[idx].Status = contract.CompensationDropped
		}
		return fmt.Errorf("step %s: %w", name, err)
	}
	s.state.CompletedSteps = append(s.state.CompletedSteps, name)
	return nil
}

// Complete marks the saga Completed after its last step.
func (s *Saga) Complete(ctx workflow.Context) error {
	return s.setStatus(ctx, contract.StatusCompleted)
}

// Compensate runs the registered compensations on a disconnected context (so
// they run even when ctx was cancelled) because of cause. It returns nil when
// all succeeded; the status is then Compensated, or Cancelled when cause is
// a cancellation. When a compensation fails after its retries, the status
// becomes contract.CompensationFailed and Compensate blocks until an operator signals
// contract.SignalRetryCompensation (rerun the failed and not yet run compensations)
// or contract.SignalResolve (give up: Compensate returns a *CompensationError and the
// status becomes Resolved).
func (s *Saga) Compensate(ctx workflow.Context, cause error) error {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	cancelled := temporal.IsCanceledError(cause) || errors.Is(ctx.Err(), workflow.ErrCanceled)
	s.state.Failure = cause.Error()
	s.state.CurrentStep = ""
	if err := s.setStatus(dctx, contract.StatusCompensating); err != nil {
		return errors.Join(cause, err)
	}

	retryCh := workflow.GetSignalChannel(dctx, contract.SignalRetryCompensation)
	resolveCh := workflow.GetSignalChannel(dctx, contract.SignalResolve)
	for {
		failed := s.runCompensations(dctx)
		if len(failed) == 0 {
			final := contract.StatusCompensated
			if cancelled {
				final = contract.StatusCancelled
			}
			return s.setStatus(dctx, final)
		}
		if err := s.setStatus(dctx, contract.StatusCompensationFailed); err != nil {
			return errors.Join(cause, err)
		}
		workflow.GetLogger(ctx).Error("Compensation failed; waiting for an operator",
			"Cause", cause, "Failed", len(failed), "Signals", contract.SignalRetryCompensation+"|"+contract.SignalResolve)

		var action contract.OperatorAction
		resolved := false
		sel := workflow.NewSelector(dctx)
		sel.AddReceive(retryCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(dctx, &action) })
		sel.AddReceive(resolveCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(dctx, &action)
			resolved = true
		})
		sel.Select(dctx)
		if resolved {
			s.state.Resolution = &action
			if err := s.setStatus(dctx, contract.StatusResolved); err != nil {
				return errors.Join(cause, err)
			}
			return &CompensationError{Cause: cause, Failed: failed, Resolution: action}
		}
		s.state.Retries = append(s.state.Retries, action)
		if err := s.setStatus(dctx, contract.StatusCompensating); err != nil {
			return errors.Join(cause, err)
		}
	}
}

// pending lists, in reverse registration order, the compensations still to
// run: registered ones, failed ones, and any a previous run stopped before.
func (s *Saga) pending() []int {
	var idx []int
	for i := len(s.comps) - 1; i >= 0; i-- {
		if s.comps[i].fn == nil {
			continue
		}
		switch s.state.Compensations[i].Status {
		case contract.CompensationRegistered, contract.CompensationFailed:
			idx = append(idx, i)
		}
	}
	return idx
}

func (s *Saga) runOne(ctx workflow.Context, i int) error {
	st := &s.state.Compensations[i]
	st.Status = contract.CompensationRunning
	st.Runs++
	err := s.comps[i].fn(ctx)
	result := contract.CompensationSucceeded
	if err != nil {
		result = contract.CompensationFailed
	}
	workflow.GetMetricsHandler(ctx).WithTags(metricTags(ctx, contract.MetricTagCompensation, s.comps[i].name, contract.MetricTagResult, string(result))).
		Counter(contract.MetricSagaCompensations).Inc(1)
	if err != nil {
		st.Status = contract.CompensationFailed
		st.Error = err.Error()
		return err
	}
	st.Status = contract.CompensationSucceeded
	st.Error = ""
	return nil
}

// runCompensations runs the pending compensations and returns those that
// failed, in the order they were run.
func (s *Saga) runCompensations(ctx workflow.Context) []FailedCompensation {
	order := s.pending()
	var failed []FailedCompensation
	if s.opts.ParallelCompensation {
		errs := make([]error, len(order))
		wg := workflow.NewWaitGroup(ctx)
		for k, i := range order {
			wg.Add(1)
			workflow.Go(ctx, func(gctx workflow.Context) {
				defer wg.Done()
				errs[k] = s.runOne(gctx, i)
			})
		}
		wg.Wait(ctx)
		for k, i := range order {
			if errs[k] != nil {
				failed = append(failed, FailedCompensation{Name: s.comps[i].name, Err: errs[k]})
			}
		}
		return failed
	}
	for _, i := range order {
		if err := s.runOne(ctx, i); err != nil {
			failed = append(failed, FailedCompensation{Name: s.comps[i].name, Err: err})
			if !s.opts.ContinueOnCompensationError {
				break
			}
		}
	}
	return failed
}
