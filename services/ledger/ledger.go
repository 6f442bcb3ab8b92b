// Package ledger is the ledger participant service: event-sourced accounts
// that take the commands ledger.open, ledger.deposit, ledger.withdraw,
// ledger.refund, ledger.freeze and ledger.close from their RabbitMQ queue,
// answer the queries ledger.balance and ledger.statement, and publish
// funds.deposited, funds.withdrawn and funds.refunded.
//
// Business rules:
//   - Amounts are integer minor units in the account's single currency; a
//     non-positive amount is rejected with invalid_amount, another currency
//     with currency_mismatch.
//   - A frozen account refuses deposits and withdrawals (account_frozen); a
//     closed one refuses everything but refunds (account_closed).
//   - A refund is a saga's compensation of a withdrawal and is applied
//     whatever the account's status, frozen or closed: money the ledger took
//     is always given back, so the books balance and a compensation never
//     fails for good. A closed account's balance after a refund is owed to
//     its owner outside the ledger.
//   - Freezing a frozen account is accepted and changes nothing; closing a
//     closed account is rejected with account_closed.
package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/store"
)

// ServiceName is the source of the ledger's envelopes and the name of its
// inbox and outbox.
const ServiceName = "ledger"

// ErrUnknownAccount is returned by the queries for an account never opened.
var ErrUnknownAccount = errors.New("ledger: unknown account")

// Config configures the ledger service.
type Config struct {
	// Queue is the command queue. Default contract.LedgerQueue
	// ("ledger.commands").
	Queue string
	// SnapshotEvery is the number of events between snapshots of a stream.
	// Default 100.
	SnapshotEvery int
	// Concurrency is the number of commands handled at once. Default 16.
	Concurrency int
	// Relay configures the outbox relay (its Producer is set by the service).
	Relay store.RelayConfig
	// Exchange is the event exchange the service's events are published to:
	// the Exchange of the connection it runs on. Default
	// amqp.DefaultExchange ("sagas.events").
	Exchange string
}

func (c *Config) setDefaults() {
	if c.Queue == "" {
		c.Queue = contract.LedgerQueue
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 100
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.SnapshotEvery < 1 {
		errs = append(errs, errors.New("ledger: SnapshotEvery must be at least 1"))
	}
	if c.Concurrency < 0 {
		errs = append(errs, errors.New("ledger: Concurrency must not be negative"))
	}
	return errors.Join(errs...)
}

// Service is the ledger.
type Service struct {
	db   *store.DB
	cfg  Config
	es   eventStore
	proc *command.Processor
}

// New builds the service on db. It does no I/O: call Migrate before Run or
// any query.
func New(db *store.DB, cfg Config) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	proc, err := command.NewProcessor(db, command.Config{Service: ServiceName, InvalidPayload: invalidAmount, Exchange: cfg.Exchange})
	if err != nil {
		return nil, err
	}
	s := &Service{db: db, cfg: cfg, es: eventStore{snapshotEvery: int64(cfg.SnapshotEvery)}, proc: proc}
	proc.Handle(events.CmdLedgerOpen, s.open)
	proc.Handle(events.CmdLedgerDeposit, s.deposit)
	proc.Handle(events.CmdLedgerWithdraw, s.withdraw)
	proc.Handle(events.CmdLedgerRefund, s.refund)
	proc.Handle(events.CmdLedgerFreeze, s.freeze)
	proc.Handle(events.CmdLedgerClose, s.close)
	proc.Query(events.QueryLedgerBalance, func(ctx context.Context, q command.Command) (any, error) {
		return rejectUnknown(s.Balance(ctx, q.Payload.(events.LedgerBalanceQuery).AccountID))
	})
	proc.Query(events.QueryLedgerStatement, func(ctx context.Context, q command.Command) (any, error) {
		return rejectUnknown(s.Statement(ctx, q.Payload.(events.LedgerStatementQuery).AccountID))
	})
	return s, nil
}

// Migrate applies the ledger's schema migrations to its store, giving up when
// ctx ends. It is idempotent and safe to run from several processes at once.
func (s *Service) Migrate(ctx context.Context) error {
	if err := s.db.Migrate(ctx, ServiceName, migrations); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

func rejectUnknown[T any](v T, err error) (any, error) {
	if errors.Is(err, ErrUnknownAccount) {
		return nil, &command.Rejection{Reason: events.ReasonUnknownAccount, Message: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// invalidAmount maps a payload whose only problems are a non-positive
// amount or a negative initial balance to an invalid_amount rejection.
func invalidAmount(fields []*events.FieldError) (string, bool) {
	for _, f := range fields {
		if f.Field != "amount.amount" && f.Field != "initial_balance" {
			return "", false
		}
	}
	return events.ReasonInvalidAmount, true
}

// Run consumes the command queue and relays the outbox until ctx ends.
func (s *Service) Run(ctx context.Context, conn *amqp.Conn) error {
	srv, err := command.NewServer(conn, s.db, s.proc, command.ServeConfig{
		Queue: s.cfg.Queue, Concurrency: s.cfg.Concurrency, Relay: s.cfg.Relay,
	})
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return srv.Run(ctx)
}

// Balance returns an account's current state (ErrUnknownAccount if it was
// never opened).
func (s *Service) Balance(ctx context.Context, accountID string) (contract.Account, error) {
	a, err := s.es.load(ctx, s.db, accountID)
	if err != nil {
		return contract.Account{}, fmt.Errorf("ledger: balance of %s: %w", accountID, err)
	}
	if !a.Exists() {
		return contract.Account{}, fmt.Errorf("%w %q", ErrUnknownAccount, accountID)
	}
	return a, nil
}

// Statement returns an account's state and its whole stream, each event with
// the command id and correlation id that caused it.
func (s *Service) Statement(ctx context.Context, accountID string) (contract.AccountStatement, error) {
	evs, err := s.es.events(ctx, s.db, accountID, 0)
	if err != nil {
		return contract.AccountStatement{}, fmt.Errorf("ledger: statement of %s: %w", accountID, err)
	}
	if len(evs) == 0 {
		return contract.AccountStatement{}, fmt.Errorf("%w %q", ErrUnknownAccount, accountID)
	}
	a, err := Fold(contract.Account{}, evs)
	if err != nil {
		return contract.AccountStatement{}, fmt.Errorf("ledger: statement of %s: %w", accountID, err)
	}
	return contract.AccountStatement{Account: a, Events: evs}, nil
}

// --- command handlers ---

func (s *Service) open(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.LedgerOpen)
	a, err := s.es.load(ctx, tx, p.AccountID)
	if err != nil {
		return command.Outcome{}, err
	}
	if a.Exists() {
		return command.Reject(events.ReasonAccountExists, fmt.Sprintf("account %s already exists", p.AccountID), a), nil
	}
	a, err = s.es.append(ctx, tx, a, p.AccountID, []newEvent{{contract.AccountEventOpened,
		contract.AccountOpened{Owner: p.Owner, Currency: p.Currency, InitialBalance: p.InitialBalance}}},
		c.Envelope.ID, c.Envelope.CorrelationID)
	if err != nil {
		return command.Outcome{}, err
	}
	return command.Accept(a), nil
}

// movement is what deposit, withdraw and refund share.
type movement struct {
	typ        string
	accountID  string
	amount     events.Money
	transferID string
}

func (s *Service) deposit(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.LedgerDeposit)
	return s.move(ctx, tx, c, movement{contract.AccountEventDeposited, p.AccountID, p.Amount, p.TransferID})
}

func (s *Service) withdraw(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.LedgerWithdraw)
	return s.move(ctx, tx, c, movement{contract.AccountEventWithdrawn, p.AccountID, p.Amount, p.TransferID})
}

func (s *Service) refund(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.LedgerRefund)
	return s.move(ctx, tx, c, movement{contract.AccountEventRefunded, p.AccountID, p.Amount, p.TransferID})
}

func (s *Service) move(ctx context.Context, tx *store.Tx, c command.Command, m movement) (command.Outcome, error) {
	a, err := s.es.load(ctx, tx, m.accountID)
	if err != nil {
		return command.Outcome{}, err
	}
	if out, rejected := checkMovement(a, m); rejected {
		return out, nil
	}
	balance := a.Balance + m.amount.Amount
	if m.typ == contract.AccountEventWithdrawn {
		balance = a.Balance - m.amount.Amount
	}
	a, err = s.es.append(ctx, tx, a, m.accountID, []newEvent{{m.typ,
		contract.FundsMoved{Amount: m.amount.Amount, Balance: balance, TransferID: m.transferID}}},
		c.Envelope.ID, c.Envelope.CorrelationID)
	if err != nil {
		return command.Outcome{}, err
	}
	var payload events.Payload
	switch m.typ {
	case contract.AccountEventDeposited:
		payload = events.FundsDeposited{AccountID: a.ID, Amount: m.amount, Balance: a.Money(), TransferID: m.transferID}
	case contract.AccountEventWithdrawn:
		payload = events.FundsWithdrawn{AccountID: a.ID, Amount: m.amount, Balance: a.Money(), TransferID: m.transferID}
	default:
		payload = events.FundsRefunded{AccountID: a.ID, Amount: m.amount, Balance: a.Money(), TransferID: m.transferID}
	}
	return command.Accept(a, command.Event{Type: m.typ, Subject: a.ID, Payload: payload}), nil
}

// checkMovement applies the business rules of a movement to the state.
func checkMovement(a contract.Account, m movement) (command.Outcome, bool) {
	switch {
	case !a.Exists():
		return command.Reject(events.ReasonUnknownAccount, fmt.Sprintf("account %s does not exist", m.accountID), nil), true
	case m.amount.Amount <= 0:
		return command.Reject(events.ReasonInvalidAmount, "amount must be positive", a), true
	case m.amount.Currency != a.Currency:
		return command.Reject(events.ReasonCurrencyMismatch,
			fmt.Sprintf("account %s holds %s, not %s", a.ID, a.Currency, m.amount.Currency), a), true
	case m.typ == contract.AccountEventRefunded:
		// A compensation: applied whatever the status (see the package doc).
		return command.Outcome{}, false
	case a.Status == contract.AccountClosed:
		return command.Reject(events.ReasonAccountClosed, fmt.Sprintf("account %s is closed", a.ID), a), true
	case a.Status == contract.AccountFrozen:
		return command.Reject(events.ReasonAccountFrozen, fmt.Sprintf("account %s is frozen", a.ID), a), true
	case m.typ == contract.AccountEventWithdrawn && a.Balance < m.amount.Amount:
		return command.Reject(events.ReasonInsufficientFunds,
			fmt.Sprintf("balance %s does not cover %s", a.Money(), m.amount), a), true
	}
	return command.Outcome{}, false
}

func (s *Service) freeze(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.LedgerFreeze)
	return s.changeStatus(ctx, tx, c, p.AccountID, contract.AccountEventFrozen, p.Reason)
}

func (s *Service) close(ctx context.Context, tx *store.Tx, c command.Command) (command.Outcome, error) {
	p := c.Payload.(events.LedgerClose)
	return s.changeStatus(ctx, tx, c, p.AccountID, contract.AccountEventClosed, p.Reason)
}

func (s *Service) changeStatus(ctx context.Context, tx *store.Tx, c command.Command, id, typ, reason string) (command.Outcome, error) {
	a, err := s.es.load(ctx, tx, id)
	if err != nil {
		return command.Outcome{}, err
	}
	switch {
	case !a.Exists():
		return command.Reject(events.ReasonUnknownAccount, fmt.Sprintf("account %s does not exist", id), nil), nil
	case a.Status == contract.AccountClosed:
		return command.Reject(events.ReasonAccountClosed, fmt.Sprintf("account %s is closed", id), a), nil
	case typ == contract.AccountEventFrozen && a.Status == contract.AccountFrozen:
		return command.Accept(a), nil
	}
	a, err = s.es.append(ctx, tx, a, id, []newEvent{{typ, contract.AccountStatusChanged{Reason: reason}}}, c.Envelope.ID, c.Envelope.CorrelationID)
	if err != nil {
		return command.Outcome{}, err
	}
	return command.Accept(a), nil
}
