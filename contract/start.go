package contract

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// StartOptions are the id policies every saga is started with, on
// taskQueue (TaskQueue when empty): one run per workflow id, ever. A second
// start of the same id, while the first runs or after it closed, fails with
// *serviceerror.WorkflowExecutionAlreadyStarted, which names the existing
// run, so the caller always knows whether it started the saga: the CLI
// attaches to a running one, the bridge acknowledges a duplicate event.
// The per-saga functions (TransferStartOptions, ReservationStartOptions,
// OrderStartOptions) add the saga's id, memo and search attributes; every
// client starts sagas with them.
func StartOptions(workflowID, taskQueue string) client.StartWorkflowOptions {
	if taskQueue == "" {
		taskQueue = TaskQueue
	}
	return client.StartWorkflowOptions{
		ID:                                       workflowID,
		TaskQueue:                                taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
}
