// Package workflows holds the sagas as deterministic Temporal workflows and
// the Saga type they share. Nothing here does I/O, reads the clock, starts
// goroutines or ranges over maps to produce commands: that is the activities'
// job, and replaying a workflow's history must reproduce its decisions.
package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/events"
)

// TaskQueue is the default task queue of every saga's workflows and
// activities: one worker binary hosts them all, and child workflows inherit
// their parent's queue.
const TaskQueue = "sagas"

// Search attribute keys the sagas upsert; the server must have them
// registered (Keyword). SagaStatusKey is declared with the Saga type.
var (
	// OrderIDKey is the OrderId search attribute of order sagas.
	OrderIDKey = temporal.NewSearchAttributeKeyKeyword("OrderId")
	// CustomerIDKey is the CustomerId search attribute of order sagas.
	CustomerIDKey = temporal.NewSearchAttributeKeyKeyword("CustomerId")
)

// ErrTypeInvalidTransfer is the application error type of a transfer whose
// input is invalid; the workflow fails at once, without retrying.
const ErrTypeInvalidTransfer = "InvalidTransfer"

// Steps of the transfer saga. With the workflow id they derive command and
// event ids, so they are part of the saga's wire contract: never rename them.
const (
	StepWithdraw       = "withdraw"
	StepDeposit        = "deposit"
	StepReverseDeposit = "reverse-deposit"
	StepRefund         = "refund"
	StepPublishOutcome = "publish-outcome"
)

// TransferInput is the input of TransferWorkflow.
type TransferInput struct {
	TransferID      string `json:"transfer_id"`
	SourceAccountID string `json:"source_account_id"`
	TargetAccountID string `json:"target_account_id"`
	// Amount in minor units of Currency; positive.
	Amount int64 `json:"amount"`
	// Currency is an ISO 4217 code such as "EUR".
	Currency string `json:"currency"`
}

// Money returns the transfer's amount with its currency.
func (in TransferInput) Money() events.Money {
	return events.Money{Amount: in.Amount, Currency: in.Currency}
}

// Validate checks the ids, distinct accounts, a positive amount and the
// currency code, with the same rules as the transfer events.
func (in TransferInput) Validate() error {
	return events.TransferCompleted{
		TransferID:      in.TransferID,
		SourceAccountID: in.SourceAccountID,
		TargetAccountID: in.TargetAccountID,
		Amount:          in.Money(),
	}.Validate()
}

// TransferOutcome is how a transfer ended.
type TransferOutcome string

// The outcomes of a transfer.
const (
	// OutcomeCompleted: the money moved.
	OutcomeCompleted TransferOutcome = "completed"
	// OutcomeFailed: no money moved (the withdraw was rejected or never applied).
	OutcomeFailed TransferOutcome = "failed"
	// OutcomeCompensated: the withdraw was refunded after the deposit failed.
	OutcomeCompensated TransferOutcome = "compensated"
	// OutcomeResolved: compensation failed and an operator resolved the transfer.
	OutcomeResolved TransferOutcome = "resolved"
)

// TransferResult is the result of TransferWorkflow.
type TransferResult struct {
	TransferID string          `json:"transfer_id"`
	Outcome    TransferOutcome `json:"outcome"`
	// Reason is a machine-readable code when the transfer did not complete,
	// such as "insufficient_funds" or "account_closed".
	Reason string `json:"reason,omitempty"`
	// Error is the full failure, including failed compensations.
	Error string `json:"error,omitempty"`
	// ResolvedBy is the operator action that ended an OutcomeResolved transfer.
	ResolvedBy *OperatorAction `json:"resolved_by,omitempty"`
}

// TransferWorkflowID is the workflow id of a transfer: one per transfer id.
func TransferWorkflowID(transferID string) string { return "transfer-" + transferID }

// TransferStartOptions are the options to start a transfer with. Starting the
// same transfer id again while it runs attaches to the running saga
// (conflict policy use-existing); after it closed the start is rejected
// (reuse policy reject-duplicate). With the ledger's inbox deduplicating
// command ids, a transfer id never moves money twice.
func TransferStartOptions(transferID, taskQueue string) client.StartWorkflowOptions {
	if taskQueue == "" {
		taskQueue = TaskQueue
	}
	return client.StartWorkflowOptions{
		ID:                       TransferWorkflowID(transferID),
		TaskQueue:                taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}
}

func invalidInput(err error) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("invalid transfer: %v", err), ErrTypeInvalidTransfer, err)
}
