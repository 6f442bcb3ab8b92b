package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
)

// LedgerCommand is the input of the ledger activities.
type LedgerCommand struct {
	// Step names the saga step; with the workflow id it derives the command
	// id, so a retried activity resends the same id and the ledger applies
	// the command once.
	Step      string `json:"step"`
	AccountID string `json:"account_id"`
	// Amount in minor units of Currency.
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	TransferID string `json:"transfer_id"`
}

// CommandResult is what an accepted command's activity returns.
type CommandResult struct {
	CommandID   string `json:"command_id"`
	CommandType string `json:"command_type"`
	// Result is the service's command-specific result, such as a balance.
	Result json.RawMessage `json:"result,omitempty"`
	// Step and Input are the saga step and the activity's input, set when
	// it ran as a local activity: the history records a local activity's
	// result, not its input.
	Step  string          `json:"step,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

// Withdraw sends ledger.withdraw and completes with the ledger's reply: a
// CommandResult, or a non-retryable application error of a rejection type
// (RejectionType) such as "InsufficientFunds".
func (a *Activities) Withdraw(ctx context.Context, cmd LedgerCommand) (CommandResult, error) {
	return a.sendLedger(ctx, events.CmdLedgerWithdraw, cmd, func(m events.Money) events.Payload {
		return events.LedgerWithdraw{AccountID: cmd.AccountID, Amount: m, TransferID: cmd.TransferID}
	})
}

// Deposit sends ledger.deposit and completes with the ledger's reply.
func (a *Activities) Deposit(ctx context.Context, cmd LedgerCommand) (CommandResult, error) {
	return a.sendLedger(ctx, events.CmdLedgerDeposit, cmd, func(m events.Money) events.Payload {
		return events.LedgerDeposit{AccountID: cmd.AccountID, Amount: m, TransferID: cmd.TransferID}
	})
}

// Refund sends ledger.refund and completes with the ledger's reply.
func (a *Activities) Refund(ctx context.Context, cmd LedgerCommand) (CommandResult, error) {
	return a.sendLedger(ctx, events.CmdLedgerRefund, cmd, func(m events.Money) events.Payload {
		return events.LedgerRefund{AccountID: cmd.AccountID, Amount: m, TransferID: cmd.TransferID}
	})
}

func (a *Activities) sendLedger(ctx context.Context, typ string, cmd LedgerCommand, payload func(events.Money) events.Payload) (CommandResult, error) {
	if cmd.Step == "" {
		return CommandResult{}, nonRetryable(fmt.Errorf("%s: step is required to derive the command id", typ), ErrTypeInvalidCommand)
	}
	data := payload(events.Money{Amount: cmd.Amount, Currency: cmd.Currency})
	return a.command(ctx, a.cfg.LedgerQueue, typ, cmd.Step, cmd.AccountID, data, cmd)
}

// command sends a command to queue with the id derived from the workflow
// id and step. Run as a regular activity it returns
// activity.ErrResultPending: the reply comes back on the worker's shared
// reply queue, and HandleReply completes the activity through Temporal,
// whichever worker consumes it. Run as a local activity it waits for the
// reply in this process, on the requester's own reply queue (request), and
// returns the outcome itself.
func (a *Activities) command(ctx context.Context, queue, typ, step, subject string, data events.Payload, input any) (CommandResult, error) {
	info := activity.GetInfo(ctx)
	msg, err := a.commandMessage(info.WorkflowExecution.ID, queue, typ, step, subject, data)
	if err != nil {
		return CommandResult{}, err
	}
	if info.IsLocalActivity {
		return a.request(ctx, queue, msg, step, input)
	}
	msg.CorrelationID = ActivityRef{
		Namespace:  info.WorkflowNamespace,
		WorkflowID: info.WorkflowExecution.ID,
		RunID:      info.WorkflowExecution.RunID,
		ActivityID: info.ActivityID,
	}.String()
	msg.ReplyTo = a.cfg.ReplyQueue
	if err := a.publisher.Publish(ctx, msg); err != nil {
		// Retryable: the next attempt resends the same command id.
		return CommandResult{}, fmt.Errorf("publish %s %s to %s: %w", typ, msg.ID, queue, err)
	}
	activity.GetLogger(ctx).Debug("Command sent", "Type", typ, "CommandID", msg.ID, "Queue", queue)
	return CommandResult{}, activity.ErrResultPending
}

// commandMessage builds the message of a command of the workflow wfID's
// step, without its reply address.
func (a *Activities) commandMessage(wfID, queue, typ, step, subject string, data events.Payload) (amqp.Message, error) {
	id := events.DeterministicID(wfID, step)
	env, err := events.New(typ, a.cfg.Source, data,
		events.WithID(id), events.WithCorrelationID(wfID), events.WithSubject(subject))
	if err != nil {
		return amqp.Message{}, nonRetryable(fmt.Errorf("build %s for %s: %w", typ, wfID, err), ErrTypeInvalidCommand)
	}
	body, err := env.Encode()
	if err != nil {
		return amqp.Message{}, nonRetryable(fmt.Errorf("encode %s for %s: %w", typ, wfID, err), ErrTypeInvalidCommand)
	}
	return amqp.Message{
		RoutingKey:  queue,
		ID:          id,
		Type:        typ,
		Timestamp:   time.Now().UTC(),
		ContentType: events.ContentTypeJSON,
		Body:        body,
	}, nil
}
