package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
)

// InventoryRejectionTypes returns the rejection types an inventory command
// can end with; workflows list them in NonRetryableErrorTypes.
func InventoryRejectionTypes() []string {
	return []string{
		ErrTypeUnknownSKU, ErrTypeInsufficientStock, ErrTypeUnknownReservation,
		ErrTypeInvalidQuantity, ErrTypeReservationNotHeld,
	}
}

// InventoryCommand is the input of the inventory activities.
type InventoryCommand struct {
	// Step names the saga step; with the workflow id it derives the command
	// id, so a retried activity resends the same id and the inventory
	// service applies the command once.
	Step          string `json:"step"`
	ReservationID string `json:"reservation_id"`
	// OrderID is carried by inventory.reserve only; optional.
	OrderID string `json:"order_id,omitempty"`
	// Lines are the lines of inventory.reserve.
	Lines []events.StockLine `json:"lines,omitempty"`
	// Reason is the release reason of inventory.release.
	Reason string `json:"reason,omitempty"`
}

// ReserveInventory sends inventory.reserve and completes with the service's
// reply: a CommandResult, or a non-retryable application error of a
// rejection type such as "InsufficientStock" (read the failing lines with
// ReservationRejection).
func (a *Activities) ReserveInventory(ctx context.Context, cmd InventoryCommand) (CommandResult, error) {
	return a.sendInventory(ctx, events.CmdInventoryReserve, cmd, events.InventoryReserve{
		ReservationID: cmd.ReservationID, OrderID: cmd.OrderID, Lines: cmd.Lines,
	})
}

// ReleaseInventory sends inventory.release and completes with the reply.
func (a *Activities) ReleaseInventory(ctx context.Context, cmd InventoryCommand) (CommandResult, error) {
	return a.sendInventory(ctx, events.CmdInventoryRelease, cmd, events.InventoryRelease{
		ReservationID: cmd.ReservationID, Reason: cmd.Reason,
	})
}

// CommitInventory sends inventory.commit and completes with the reply.
func (a *Activities) CommitInventory(ctx context.Context, cmd InventoryCommand) (CommandResult, error) {
	return a.sendInventory(ctx, events.CmdInventoryCommit, cmd, events.InventoryCommit{
		ReservationID: cmd.ReservationID,
	})
}

func (a *Activities) sendInventory(ctx context.Context, typ string, cmd InventoryCommand, data events.Payload) (CommandResult, error) {
	if cmd.Step == "" {
		return CommandResult{}, nonRetryable(fmt.Errorf("%s: step is required to derive the command id", typ), ErrTypeInvalidCommand)
	}
	return a.command(ctx, a.cfg.InventoryQueue, typ, cmd.Step, cmd.ReservationID, data, cmd)
}

// ReservationRejection returns the reason code and the failing lines of an
// activity error that is an inventory.reserve rejection. The lines come from
// the reply's Result when the rejection carries it as its second detail
// (either {"failed_lines": [...]} or a bare array of stock lines); they are
// nil when it does not.
func ReservationRejection(err error) (reason string, failed []events.StockLine, ok bool) {
	reason, ok = RejectionReason(err)
	if !ok {
		return "", nil, false
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return reason, nil, true
	}
	var first string
	var result json.RawMessage
	if appErr.Details(&first, &result) != nil || len(result) == 0 {
		return reason, nil, true
	}
	return reason, FailedLines(result), true
}

// FailedLines parses the failing lines out of an inventory.reserve
// rejection's Result: {"failed_lines": [...]}, {"lines": [...]} or a bare
// array, whose items carry the sku and either "quantity" or, as the
// inventory service reports them, "requested". Lines without a sku or a
// positive quantity, and anything unrecognised, are left out: the lines are
// informative, never required.
func FailedLines(result json.RawMessage) []events.StockLine {
	var wrapped struct {
		FailedLines []failedLine `json:"failed_lines"`
		Lines       []failedLine `json:"lines"`
	}
	var items []failedLine
	if err := json.Unmarshal(result, &wrapped); err == nil {
		items = wrapped.FailedLines
		if len(items) == 0 {
			items = wrapped.Lines
		}
	} else if err := json.Unmarshal(result, &items); err != nil {
		return nil
	}
	var lines []events.StockLine
	for _, it := range items {
		q := it.Quantity
		if q <= 0 {
			q = it.Requested
		}
		if it.SKU != "" && q > 0 {
			lines = append(lines, events.StockLine{SKU: it.SKU, Quantity: q})
		}
	}
	return lines
}

// failedLine is one failing line as a rejection's Result may carry it.
type failedLine struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	Requested int64  `json:"requested"`
}

// ReservationFailedEvent is the input of PublishReservationFailed.
type ReservationFailedEvent struct {
	// Step names the saga step publishing it; with the workflow id it
	// derives the envelope id, so a retried publish is dropped by consumers.
	Step          string             `json:"step"`
	ReservationID string             `json:"reservation_id"`
	OrderID       string             `json:"order_id,omitempty"`
	Reason        string             `json:"reason"`
	FailedLines   []events.StockLine `json:"failed_lines,omitempty"`
}

// PublishReservationFailed publishes inventory.reservation_failed for a
// reservation the inventory service refused, with a deterministic id.
func (a *Activities) PublishReservationFailed(ctx context.Context, ev ReservationFailedEvent) error {
	return a.publishSagaEvent(ctx, events.TypeInventoryReservationFailed, ev.Step, ev.ReservationID, events.InventoryReservationFailed{
		ReservationID: ev.ReservationID,
		OrderID:       ev.OrderID,
		Reason:        ev.Reason,
		FailedLines:   ev.FailedLines,
	})
}

// publishSagaEvent publishes an event a saga emits itself on the event
// exchange, with an id derived from the workflow id and step and the
// workflow id as correlation id.
func (a *Activities) publishSagaEvent(ctx context.Context, typ, step, subject string, data events.Payload) error {
	if step == "" {
		return nonRetryable(fmt.Errorf("publish %s: step is required to derive the event id", typ), ErrTypeInvalidEvent)
	}
	wfID := activity.GetInfo(ctx).WorkflowExecution.ID
	env, err := events.New(typ, "workflow/"+wfID, data,
		events.WithID(events.DeterministicID(wfID, step)),
		events.WithCorrelationID(wfID), events.WithSubject(subject))
	if err != nil {
		return nonRetryable(fmt.Errorf("build %s for %s: %w", typ, wfID, err), ErrTypeInvalidEvent)
	}
	msg, err := amqp.MessageFromEnvelope(a.cfg.Exchange, env)
	if err != nil {
		return nonRetryable(fmt.Errorf("message of %s for %s: %w", typ, wfID, err), ErrTypeInvalidEvent)
	}
	if err := a.publisher.Publish(ctx, msg); err != nil {
		// Retryable: the next attempt publishes the same id.
		return fmt.Errorf("publish %s %s: %w", typ, env.ID, err)
	}
	return nil
}
