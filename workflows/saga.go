package workflows

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// SagaStatus is where a saga stands; it is also the value of the SagaStatus
// search attribute, so operators can list sagas that need them.
type SagaStatus string

// The statuses a saga moves through.
const (
	// StatusRunning: steps are executing.
	StatusRunning SagaStatus = "Running"
	// StatusCompensating: a step failed (or the saga was cancelled) and the
	// registered compensations are running.
	StatusCompensating SagaStatus = "Compensating"
	// StatusCompleted: every step succeeded.
	StatusCompleted SagaStatus = "Completed"
	// StatusCompensated: a step failed and every compensation succeeded.
	StatusCompensated SagaStatus = "Compensated"
	// StatusCompensationFailed: a compensation failed after its retries; the
	// saga waits for an operator's SignalRetryCompensation or SignalResolve.
	StatusCompensationFailed SagaStatus = "CompensationFailed"
	// StatusCancelled: the saga was cancelled and every compensation succeeded.
	StatusCancelled SagaStatus = "Cancelled"
	// StatusResolved: an operator ended a saga whose compensation had failed.
	StatusResolved SagaStatus = "Resolved"
)

// Names of the saga's query and signals, part of its public interface.
const (
	// QueryStatus returns the saga's SagaState.
	QueryStatus = "status"
	// SignalRetryCompensation reruns the failed compensations; payload OperatorAction.
	SignalRetryCompensation = "retry-compensation"
	// SignalResolve ends a saga whose compensation failed; payload OperatorAction.
	SignalResolve = "resolve"
)

// CompensationStatus is the outcome of one compensation.
type CompensationStatus string

// The outcomes of a compensation.
const (
	// CompensationRegistered: registered, not run (the saga has not failed).
	CompensationRegistered CompensationStatus = "registered"
	// CompensationRunning: running now.
	CompensationRunning CompensationStatus = "running"
	// CompensationSucceeded: ran and succeeded.
	CompensationSucceeded CompensationStatus = "succeeded"
	// CompensationFailed: ran and failed after its retries.
	CompensationFailed CompensationStatus = "failed"
	// CompensationDropped: its step was rejected, so it had nothing to undo.
	CompensationDropped CompensationStatus = "dropped"
)

// CompensationState is one compensation as the status query reports it.
type CompensationState struct {
	// Name of the compensation, usually the step it undoes.
	Name   string             `json:"name"`
	Status CompensationStatus `json:"status"`
	// Runs counts how often the saga ran it (each run has its own activity retries).
	Runs int `json:"runs"`
	// Error of the last failed run.
	Error string `json:"error,omitempty"`
}

// OperatorAction is the payload of SignalRetryCompensation and SignalResolve:
// who acted and why, kept in the saga's state and history for the audit trail.
type OperatorAction struct {
	Operator string `json:"operator"`
	Reason   string `json:"reason"`
}

// SagaState is the saga's progress, returned by the QueryStatus query.
type SagaState struct {
	Status SagaStatus `json:"status"`
	// CurrentStep is the step running now, "" between steps and at the end.
	CurrentStep string `json:"current_step,omitempty"`
	// CompletedSteps in the order they succeeded.
	CompletedSteps []string `json:"completed_steps"`
	// Compensations in registration order.
	Compensations []CompensationState `json:"compensations"`
	// Failure is the error that made the saga compensate.
	Failure string `json:"failure,omitempty"`
	// Retries are the operator's retry-compensation signals, in order.
	Retries []OperatorAction `json:"retries,omitempty"`
	// Resolution is set when an operator resolved the saga.
	Resolution *OperatorAction `json:"resolution,omitempty"`
}

// SagaStatusKey is the SagaStatus search attribute (Keyword).
var SagaStatusKey = temporal.NewSearchAttributeKeyKeyword("SagaStatus")

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
	Resolution OperatorAction
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
	state SagaState
	comps []compensation
}

// NewSaga creates the saga of the calling workflow, registers the
// QueryStatus query and sets SagaStatus to Running.
func NewSaga(ctx workflow.Context, opts SagaOptions) (*Saga, error) {
	if opts.StepNotApplied == nil {
		opts.StepNotApplied = IsRejection
	}
	s := &Saga{opts: opts, state: SagaState{CompletedSteps: []string{}, Compensations: []CompensationState{}}}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (SagaState, error) {
		return s.State(), nil
	}); err != nil {
		return nil, fmt.Errorf("register %s query: %w", QueryStatus, err)
	}
	if err := s.setStatus(ctx, StatusRunning); err != nil {
		return nil, err
	}
	return s, nil
}

// State returns a copy of the saga's progress.
func (s *Saga) State() SagaState {
	st := s.state
	st.CompletedSteps = append([]string{}, s.state.CompletedSteps...)
	st.Compensations = append([]CompensationState{}, s.state.Compensations...)
	st.Retries = append([]OperatorAction(nil), s.state.Retries...)
	return st
}

func (s *Saga) setStatus(ctx workflow.Context, status SagaStatus) error {
	s.state.Status = status
	if err := workflow.UpsertTypedSearchAttributes(ctx, SagaStatusKey.ValueSet(string(status))); err != nil {
		return fmt.Errorf("upsert SagaStatus %s: %w", status, err)
	}
	return nil
}

// AddCompensation registers the compensation of a step about to run.
func (s *Saga) AddCompensation(name string, fn CompensationFunc) {
	s.comps = append(s.comps, compensation{name: name, fn: fn})
	s.state.Compensations = append(s.state.Compensations, CompensationState{Name: name, Status: CompensationRegistered})
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
			s.state.Compensations[idx].Status = CompensationDropped
		}
		return fmt.Errorf("step %s: %w", name, err)
	}
	s.state.CompletedSteps = append(s.state.CompletedSteps, name)
	return nil
}

// Complete marks the saga Completed after its last step.
func (s *Saga) Complete(ctx workflow.Context) error {
	return s.setStatus(ctx, StatusCompleted)
}

// Compensate runs the registered compensations on a disconnected context (so
// they run even when ctx was cancelled) because of cause. It returns nil when
// all succeeded; the status is then Compensated, or Cancelled when cause is
// a cancellation. When a compensation fails after its retries, the status
// becomes CompensationFailed and Compensate blocks until an operator signals
// SignalRetryCompensation (rerun the failed and not yet run compensations)
// or SignalResolve (give up: Compensate returns a *CompensationError and the
// status becomes Resolved).
func (s *Saga) Compensate(ctx workflow.Context, cause error) error {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	cancelled := temporal.IsCanceledError(cause) || errors.Is(ctx.Err(), workflow.ErrCanceled)
	s.state.Failure = cause.Error()
	s.state.CurrentStep = ""
	if err := s.setStatus(dctx, StatusCompensating); err != nil {
		return errors.Join(cause, err)
	}

	retryCh := workflow.GetSignalChannel(dctx, SignalRetryCompensation)
	resolveCh := workflow.GetSignalChannel(dctx, SignalResolve)
	for {
		failed := s.runCompensations(dctx)
		if len(failed) == 0 {
			final := StatusCompensated
			if cancelled {
				final = StatusCancelled
			}
			return s.setStatus(dctx, final)
		}
		if err := s.setStatus(dctx, StatusCompensationFailed); err != nil {
			return errors.Join(cause, err)
		}
		workflow.GetLogger(ctx).Error("Compensation failed; waiting for an operator",
			"Cause", cause, "Failed", len(failed), "Signals", SignalRetryCompensation+"|"+SignalResolve)

		var action OperatorAction
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
			if err := s.setStatus(dctx, StatusResolved); err != nil {
				return errors.Join(cause, err)
			}
			return &CompensationError{Cause: cause, Failed: failed, Resolution: action}
		}
		s.state.Retries = append(s.state.Retries, action)
		if err := s.setStatus(dctx, StatusCompensating); err != nil {
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
		case CompensationRegistered, CompensationFailed:
			idx = append(idx, i)
		}
	}
	return idx
}

func (s *Saga) runOne(ctx workflow.Context, i int) error {
	st := &s.state.Compensations[i]
	st.Status = CompensationRunning
	st.Runs++
	if err := s.comps[i].fn(ctx); err != nil {
		st.Status = CompensationFailed
		st.Error = err.Error()
		return err
	}
	st.Status = CompensationSucceeded
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
