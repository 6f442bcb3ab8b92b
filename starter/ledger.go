package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

const (
	serviceLedger    = "ledger"
	serviceInventory = "inventory"
	serviceOrders    = "orders"
)

func (a *app) accountCommand() *cobra.Command {
	return group("account", "Open accounts, deposit, and read balances and statements (ledger service)",
		a.accountOpenCommand(), a.accountDepositCommand(), a.accountBalanceCommand(), a.accountStatementCommand())
}

func (a *app) accountOpenCommand() *cobra.Command {
	c := newCommand("open ACCOUNT", "Open an account in one currency")
	c.Args = cobra.ExactArgs(1)
	currency := c.Flags().String("currency", "EUR", "ISO 4217 currency of the account")
	owner := c.Flags().String("owner", "", "who holds the account")
	initial := c.Flags().String("initial", "0", "initial balance: minor units (1250) or a decimal (12.50)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cur, err := parseCurrency(*currency)
		if err != nil {
			return err
		}
		bal, err := parseMinor(*initial, cur)
		if err != nil {
			return err
		}
		if bal < 0 {
			return usagef("--initial %s: must not be negative", *initial)
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		var acc contract.Account
		if err := a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.CmdLedgerOpen, args[0],
			events.LedgerOpen{AccountID: args[0], Currency: cur, Owner: *owner, InitialBalance: bal}, &acc); err != nil {
			return err
		}
		return a.showAccount(acc, "opened")
	}
	return c
}

func (a *app) accountDepositCommand() *cobra.Command {
	c := newCommand("deposit ACCOUNT", "Deposit money into an account")
	c.Args = cobra.ExactArgs(1)
	amount := c.Flags().String("amount", "", "amount: minor units (1250) or a decimal (12.50); required")
	currency := c.Flags().String("currency", "EUR", "ISO 4217 currency, the account's")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cur, err := parseCurrency(*currency)
		if err != nil {
			return err
		}
		n, err := parseAmount(*amount, cur)
		if err != nil {
			return err
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		var acc contract.Account
		if err := a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.CmdLedgerDeposit, args[0],
			events.LedgerDeposit{AccountID: args[0], Amount: events.Money{Amount: n, Currency: cur}}, &acc); err != nil {
			return err
		}
		return a.showAccount(acc, "deposited "+formatMoney(n, cur)+" into")
	}
	return c
}

func (a *app) accountBalanceCommand() *cobra.Command {
	c := newCommand("balance ACCOUNT", "Show an account's balance and status")
	c.Args = cobra.ExactArgs(1)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		var acc contract.Account
		if err := a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.QueryLedgerBalance, args[0],
			events.LedgerBalanceQuery{AccountID: args[0]}, &acc); err != nil {
			return err
		}
		return a.showAccount(acc, "")
	}
	return c
}

func (a *app) showAccount(acc contract.Account, verb string) error {
	if a.cfg.JSON {
		return a.printJSON(acc)
	}
	if verb != "" {
		a.printf("%s account %s\n", capitalize(verb), acc.ID)
	}
	a.printf("account %s: balance %s, status %s", acc.ID, formatMoney(acc.Balance, acc.Currency), acc.Status)
	if acc.Owner != "" {
		a.printf(", owner %s", acc.Owner)
	}
	a.printf("\n")
	return nil
}

// statementLine is one change of an account as the statement shows it,
// linked to the saga that caused it.
type statementLine struct {
	Version int64  `json:"version"`
	Time    string `json:"time"`
	Type    string `json:"type"`
	// Amount is the signed change in minor units (0 for status changes).
	Amount int64 `json:"amount"`
	// Balance is the balance after the change.
	Balance int64 `json:"balance"`
	// Saga is the correlation id of the command: the workflow id of the
	// saga that caused the change, empty for a direct command.
	Saga string `json:"saga,omitempty"`
	// History is the command that shows that saga's audit trail.
	History string `json:"history,omitempty"`
	// WorkflowURL is the saga's page in the Temporal Web UI.
	WorkflowURL string `json:"workflow_url,omitempty"`
	CommandID   string `json:"command_id"`
	Note        string `json:"note,omitempty"`
}

func (a *app) accountStatementCommand() *cobra.Command {
	c := newCommand("statement ACCOUNT", "Show every change of an account with the saga that caused it")
	c.Args = cobra.ExactArgs(1)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		var st contract.AccountStatement
		if err := a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.QueryLedgerStatement, args[0],
			events.LedgerStatementQuery{AccountID: args[0]}, &st); err != nil {
			return err
		}
		lines := a.statementLines(st)
		if a.cfg.JSON {
			return a.printJSON(struct {
				Account contract.Account `json:"account"`
				Lines   []statementLine  `json:"lines"`
			}{st.Account, lines})
		}
		acc := st.Account
		a.printf("Account %s (%s), balance %s, status %s\n\n", acc.ID, acc.Currency, formatMoney(acc.Balance, acc.Currency), acc.Status)
		tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tTIME\tCHANGE\tAMOUNT\tBALANCE\tSAGA")
		for _, l := range lines {
			amount := ""
			if l.Amount != 0 {
				amount = formatMoney(l.Amount, acc.Currency)
				if l.Amount > 0 {
					amount = "+" + amount
				}
			}
			saga := "-"
			if l.Saga != "" {
				saga = l.Saga + "  (" + l.History + ")"
			}
			change := l.Type
			if l.Note != "" {
				change += " (" + l.Note + ")"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", l.Version, l.Time, change, amount, formatMoney(l.Balance, acc.Currency), saga)
		}
		return tw.Flush()
	}
	return c
}

// statementLines turns the account's stream into statement lines.
func (a *app) statementLines(st contract.AccountStatement) []statementLine {
	lines := make([]statementLine, 0, len(st.Events))
	var balance int64
	for _, e := range st.Events {
		l := statementLine{Version: e.Version, Time: stamp(e.RecordedAt), Type: e.Type, CommandID: e.CommandID, Saga: e.CorrelationID}
		switch e.Type {
		case contract.AccountEventOpened:
			var d contract.AccountOpened
			_ = json.Unmarshal(e.Data, &d)
			l.Amount, balance = d.InitialBalance, d.InitialBalance
			if d.Owner != "" {
				l.Note = "owner " + d.Owner
			}
		case contract.AccountEventDeposited, contract.AccountEventWithdrawn, contract.AccountEventRefunded:
			var d contract.FundsMoved
			_ = json.Unmarshal(e.Data, &d)
			l.Amount, balance = d.Amount, d.Balance
			if e.Type == contract.AccountEventWithdrawn {
				l.Amount = -d.Amount
			}
			if d.TransferID != "" {
				l.Note = "transfer " + d.TransferID
			}
		default:
			var d contract.AccountStatusChanged
			_ = json.Unmarshal(e.Data, &d)
			l.Note = d.Reason
		}
		l.Balance = balance
		if l.Saga != "" {
			l.History = "starter history " + l.Saga
			l.WorkflowURL = a.cfg.workflowURL(l.Saga)
		}
		lines = append(lines, l)
	}
	return lines
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (a *app) stockCommand() *cobra.Command {
	return group("stock", "Restock skus and show stock levels (inventory service)",
		a.stockAddCommand(), a.stockShowCommand())
}

func (a *app) stockAddCommand() *cobra.Command {
	c := newCommand("add SKU", "Add on-hand stock to a sku, creating it if it is new")
	c.Args = cobra.ExactArgs(1)
	qty := c.Flags().Int64("quantity", 0, "units to add; positive; required")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if *qty <= 0 {
			return usagef("--quantity %d: must be positive", *qty)
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		var st contract.StockLevel
		if err := a.request(ctx, serviceInventory, a.cfg.InventoryQueue, events.CmdInventoryRestock, args[0],
			events.InventoryRestock{SKU: args[0], Quantity: *qty}, &st); err != nil {
			return err
		}
		return a.showStock([]contract.StockLevel{st})
	}
	return c
}

func (a *app) stockShowCommand() *cobra.Command {
	c := newCommand("show [SKU...]", "Show the stock of skus (of every sku when none is named)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		var st []contract.StockLevel
		if err := a.request(ctx, serviceInventory, a.cfg.InventoryQueue, events.QueryInventoryStock, strings.Join(args, ","),
			events.InventoryStockQuery{SKUs: args}, &st); err != nil {
			return err
		}
		known := map[string]bool{}
		for _, s := range st {
			known[s.SKU] = true
		}
		var unknown []string
		for _, sku := range args {
			if !known[sku] {
				unknown = append(unknown, sku)
			}
		}
		if len(unknown) > 0 {
			return &rejectedError{Service: serviceInventory, Type: events.QueryInventoryStock, Reason: events.ReasonUnknownSKU,
				Message: "no stock record for " + strings.Join(unknown, ", ")}
		}
		return a.showStock(st)
	}
	return c
}

func (a *app) showStock(st []contract.StockLevel) error {
	if a.cfg.JSON {
		if st == nil {
			st = []contract.StockLevel{}
		}
		return a.printJSON(st)
	}
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SKU\tON HAND\tRESERVED\tAVAILABLE")
	for _, s := range st {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", s.SKU, s.OnHand, s.Reserved, s.Available)
	}
	return tw.Flush()
}
