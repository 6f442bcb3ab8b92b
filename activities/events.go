package activities

import (
	"context"
	"fmt"

	"github.com/sagaflow/sagaflow/events"
)

// TransferEvent is the input of PublishTransferEvent.
type TransferEvent struct {
	// Step names the saga step publishing it; with the workflow id it derives
	// the envelope id, so a retried publish is dropped by consumers.
	Step string `json:"step"`
	// Type is events.TypeTransferCompleted or events.TypeTransferFailed.
	Type            string `json:"type"`
	TransferID      string `json:"transfer_id"`
	SourceAccountID string `json:"source_account_id"`
	TargetAccountID string `json:"target_account_id"`
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
	// Reason is required for transfer.failed.
	Reason string `json:"reason,omitempty"`
}

// PublishTransferEvent publishes the transfer saga's own outcome event on the
// event exchange with a deterministic id.
func (a *Activities) PublishTransferEvent(ctx context.Context, ev TransferEvent) error {
	money := events.Money{Amount: ev.Amount, Currency: ev.Currency}
	var data events.Payload
	switch ev.Type {
	case events.TypeTransferCompleted:
		data = events.TransferCompleted{TransferID: ev.TransferID, SourceAccountID: ev.SourceAccountID, TargetAccountID: ev.TargetAccountID, Amount: money}
	case events.TypeTransferFailed:
		data = events.TransferFailed{TransferID: ev.TransferID, SourceAccountID: ev.SourceAccountID, TargetAccountID: ev.TargetAccountID, Amount: money, Reason: ev.Reason}
	default:
		return nonRetryable(fmt.Errorf("publish transfer event: unexpected type %q", ev.Type), ErrTypeInvalidEvent)
	}
	return a.publishSagaEvent(ctx, ev.Type, ev.Step, ev.TransferID, data)
}
