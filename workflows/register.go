package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/contract"
)

// Register registers every saga workflow with a worker (or a replayer)
// under its contract type name, which clients start it by.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(TransferWorkflow, workflow.RegisterOptions{Name: contract.TransferWorkflowType})
	r.RegisterWorkflowWithOptions(ReserveInventoryWorkflow, workflow.RegisterOptions{Name: contract.ReservationWorkflowType})
	r.RegisterWorkflowWithOptions(OrderWorkflow, workflow.RegisterOptions{Name: contract.OrderWorkflowType})
}
