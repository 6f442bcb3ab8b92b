package contract

import "go.temporal.io/sdk/temporal"

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

// Search attribute keys the sagas upsert beside SagaStatusKey; the server
// must have them registered as Keyword.
var (
	// OrderIDKey is the OrderId search attribute of order sagas.
	OrderIDKey = temporal.NewSearchAttributeKeyKeyword("OrderId")
	// CustomerIDKey is the CustomerId search attribute of order sagas.
	CustomerIDKey = temporal.NewSearchAttributeKeyKeyword("CustomerId")
)

// SearchAttributes returns the custom search attributes of the sagas as
// "Name=Type" pairs, the form `temporal operator search-attribute create`
// and `temporal server start-dev --search-attribute` take.
func SearchAttributes() []string {
	return []string{
		SagaStatusKey.GetName() + "=Keyword",
		OrderIDKey.GetName() + "=Keyword",
		CustomerIDKey.GetName() + "=Keyword",
	}
}
