package workflows

import "go.temporal.io/sdk/worker"

// Register registers every saga workflow with a worker (or a replayer), under
// its function name, which is its workflow type.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(TransferWorkflow)
	r.RegisterWorkflow(ReserveInventoryWorkflow)
	r.RegisterWorkflow(OrderWorkflow)
}
