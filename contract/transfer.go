package contract

import (
	"time"

	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/events"
)

// TransferWorkflowType is the registered name of the transfer saga.
const TransferWorkflowType = "TransferWorkflow"

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
	// Deadline is when the transfer stops retrying a withdraw or deposit
	// that fails for a reason of the infrastructure, and compensates
	// instead (reason ReasonDeadlinePassed). Zero: DefaultTransferDeadline
	// after the transfer started.
	Deadline time.Time `json:"deadline,omitzero"`
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
	// TransferCompleted: the money moved.
	TransferCompleted TransferOutcome = "completed"
	// TransferFailed: no money moved (the withdraw was rejected or never applied).
	TransferFailed TransferOutcome = "failed"
	// TransferCompensated: the withdraw was refunded after the deposit failed.
	TransferCompensated TransferOutcome = "compensated"
	// TransferResolved: compensation failed and an operator resolved the transfer.
	TransferResolved TransferOutcome = "resolved"
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
	// ResolvedBy is the operator action that ended an TransferResolved transfer.
	ResolvedBy *OperatorAction `json:"resolved_by,omitempty"`
}

// TransferWorkflowID is the workflow id of a transfer: one per transfer id.
func TransferWorkflowID(transferID string) string { return "transfer-" + transferID }

// TransferStartOptions are the options to start a transfer with: the
// policies of StartOptions (one saga per transfer id, ever). With the
// ledger's inbox deduplicating command ids, a transfer id never moves money
// twice.
func TransferStartOptions(transferID, taskQueue string) client.StartWorkflowOptions {
	return StartOptions(TransferWorkflowID(transferID), taskQueue)
}
