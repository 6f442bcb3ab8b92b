package contract

// The saga business metrics: the saga helper records them through the
// workflow's metrics handler, the worker exposes them on /metrics under
// these names, and the Grafana dashboard queries them.
const (
	// MetricSagaStarted counts sagas started, by MetricTagSagaType.
	MetricSagaStarted = "sagaflow_saga_started_total"
	// MetricSagaEnded counts sagas that reached an end, by
	// MetricTagSagaType and MetricTagOutcome.
	MetricSagaEnded = "sagaflow_saga_ended_total"
	// MetricSagaParked counts sagas whose compensation failed for good and
	// that wait for an operator (status CompensationFailed), by
	// MetricTagSagaType; a saga parked again after a retry counts again.
	MetricSagaParked = "sagaflow_saga_parked_total"
	// MetricSagaDuration is the histogram, in seconds, of the time from a
	// saga's start to its end, by MetricTagSagaType and MetricTagOutcome.
	MetricSagaDuration = "sagaflow_saga_duration_seconds"
	// MetricSagaCompensations counts compensations run, by
	// MetricTagSagaType, MetricTagCompensation and MetricTagResult.
	MetricSagaCompensations = "sagaflow_saga_compensations_total"
)

// The labels of the saga business metrics.
const (
	// MetricTagSagaType is the saga's workflow type (OrderWorkflowType, …).
	MetricTagSagaType = "saga_type"
	// MetricTagOutcome is how a saga ended: the lower-case SagaStatus it
	// ended in (completed, compensated, cancelled, resolved).
	MetricTagOutcome = "outcome"
	// MetricTagCompensation is the name of the step a compensation undoes.
	MetricTagCompensation = "compensation"
	// MetricTagResult is a compensation run's result: CompensationSucceeded
	// or CompensationFailed.
	MetricTagResult = "result"
)
