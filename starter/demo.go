package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// demoSaga is one saga of the demo and how it ended.
type demoSaga struct {
	What       string `json:"what"`
	WorkflowID string `json:"workflow_id"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason,omitempty"`
	URL        string `json:"url"`
}

func (a *app) demoCommand() *cobra.Command {
	c := newCommand("demo", "Run the demo: accounts, stock and a mix of sagas that succeed, fail, compensate and cancel")
	c.Long = `demo sets up accounts and stock with fresh ids, then runs a mix of sagas at
once: transfers that complete, fail and compensate, orders that are confirmed,
refused for stock or funds, cancelled by the customer, and one started by an
order.placed event on RabbitMQ through the bridge. It prints a summary with
each saga's Web UI link. 'make demo' starts the dev server and the worker and
then runs it.`
	health := c.Flags().String("worker-health", "http://127.0.0.1:9090/healthz", "the worker's health endpoint, waited for before starting; empty skips the wait")
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Minute)
		defer cancel()
		if *health != "" {
			if err := waitHealthy(ctx, *health); err != nil {
				return err
			}
		}
		return a.runDemo(ctx)
	}
	return c
}

// waitHealthy polls the worker's health endpoint: a process that starts
// offers no other signal that its consumers are consuming.
func waitHealthy(ctx context.Context, url string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		resp, err := hc.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = shortError(err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the worker at %s is not healthy: %s", url, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (a *app) runDemo(ctx context.Context) error {
	tc, err := a.temporalClient(ctx)
	if err != nil {
		return err
	}
	run := newID()
	id := func(name string) string { return "demo-" + run + "-" + name }
	const eur = "EUR"

	a.printf("Setting up accounts and stock (run %s)\n", run)
	accounts := []struct {
		name    string
		balance int64
	}{{"alice", 100_00}, {"bob", 20_00}, {"shop", 0}, {"carol", 0}}
	for _, acc := range accounts {
		if err := a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.CmdLedgerOpen, id(acc.name),
			events.LedgerOpen{AccountID: id(acc.name), Currency: eur, Owner: acc.name, InitialBalance: acc.balance}, nil); err != nil {
			return err
		}
	}
	if err := a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.CmdLedgerClose, id("carol"),
		events.LedgerClose{AccountID: id("carol"), Reason: "moved away"}, nil); err != nil {
		return err
	}
	for sku, qty := range map[string]int64{"apple": 10, "pear": 2} {
		if err := a.request(ctx, serviceInventory, a.cfg.InventoryQueue, events.CmdInventoryRestock, id(sku),
			events.InventoryRestock{SKU: id(sku), Quantity: qty}, nil); err != nil {
			return err
		}
	}

	order := func(name, customer string, lines ...events.OrderLine) events.OrderPlaced {
		o := events.OrderPlaced{OrderID: id(name), CustomerID: id(customer), MerchantID: id("shop"), Currency: eur, Lines: lines}
		for _, l := range lines {
			o.Total += l.Quantity * l.UnitPrice
		}
		return o
	}
	line := func(sku string, qty, price int64) events.OrderLine {
		return events.OrderLine{SKU: id(sku), Quantity: qty, UnitPrice: price}
	}
	transfer := func(name, from, to string, amount int64) contract.TransferInput {
		return contract.TransferInput{TransferID: id(name), SourceAccountID: id(from), TargetAccountID: id(to), Amount: amount, Currency: eur}
	}

	type job struct {
		what  string
		wfID  string
		start func() (client.WorkflowRun, error)
	}
	startOrder := func(o events.OrderPlaced) func() (client.WorkflowRun, error) {
		return func() (client.WorkflowRun, error) {
			return tc.ExecuteWorkflow(ctx, contract.OrderStartOptions(o, a.cfg.TaskQueue), contract.OrderWorkflowType, o)
		}
	}
	startTransfer := func(in contract.TransferInput) func() (client.WorkflowRun, error) {
		return func() (client.WorkflowRun, error) {
			return tc.ExecuteWorkflow(ctx, contract.TransferStartOptions(in.TransferID, a.cfg.TaskQueue), contract.TransferWorkflowType, in)
		}
	}
	orderOK := order("order-1", "alice", line("apple", 2, 1_50), line("pear", 1, 2_00))
	orderNoStock := order("order-2", "alice", line("pear", 5, 2_00))
	orderNoFunds := order("order-3", "bob", line("apple", 3, 20_00))
	orderCancelled := order("order-4", "alice", line("apple", 1, 1_50))
	orderByEvent := order("order-5", "bob", line("apple", 2, 1_50))
	jobs := []job{
		{"transfer 25.00 alice → bob", contract.TransferWorkflowID(id("t-1")), startTransfer(transfer("t-1", "alice", "bob", 25_00))},
		{"transfer 500.00 bob → alice (overdraws)", contract.TransferWorkflowID(id("t-2")), startTransfer(transfer("t-2", "bob", "alice", 500_00))},
		{"transfer 10.00 alice → carol (closed)", contract.TransferWorkflowID(id("t-3")), startTransfer(transfer("t-3", "alice", "carol", 10_00))},
		{"order: 2 apples + 1 pear for alice", contract.OrderWorkflowID(orderOK.OrderID), startOrder(orderOK)},
		{"order: 5 pears (2 in stock)", contract.OrderWorkflowID(orderNoStock.OrderID), startOrder(orderNoStock)},
		{"order: 60.00 of apples for bob (too poor)", contract.OrderWorkflowID(orderNoFunds.OrderID), startOrder(orderNoFunds)},
		{"order: cancelled by alice", contract.OrderWorkflowID(orderCancelled.OrderID), startOrder(orderCancelled)},
	}

	a.printf("Starting %d sagas and publishing one order.placed event for the bridge\n", len(jobs)+1)
	results := make([]demoSaga, len(jobs)+1)
	var wg sync.WaitGroup
	for i, j := range jobs {
		results[i] = demoSaga{What: j.what, WorkflowID: j.wfID, URL: a.cfg.workflowURL(j.wfID)}
		wg.Go(func() {
			wfRun, err := j.start()
			if err == nil && j.wfID == contract.OrderWorkflowID(orderCancelled.OrderID) {
				err = tc.SignalWorkflow(ctx, j.wfID, "", contract.SignalCancel, contract.CancelRequest{Reason: "changed my mind"})
			}
			if err != nil {
				results[i].Outcome, results[i].Reason = "not started", shortError(err)
				return
			}
			results[i].Outcome, results[i].Reason = outcomeOf(wfRun.Get(ctx, nil), func(v any) error { return wfRun.Get(ctx, v) })
		})
	}
	last := len(jobs)
	eventWF := contract.OrderWorkflowID(orderByEvent.OrderID)
	results[last] = demoSaga{What: "order.placed event → bridge → order saga", WorkflowID: eventWF, URL: a.cfg.workflowURL(eventWF)}
	wg.Go(func() {
		if _, _, err := a.publishOrder(ctx, orderByEvent); err != nil {
			results[last].Outcome, results[last].Reason = "not published", shortError(err)
			return
		}
		res, err := a.awaitWorkflow(ctx, eventWF)
		results[last].Outcome, results[last].Reason = outcomeOf(err, func(v any) error { return json.Unmarshal(res, v) })
	})
	wg.Wait()

	a.printf("\n")
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SAGA\tOUTCOME\tREASON\tWEB UI")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.What, r.Outcome, r.Reason, r.URL)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	a.printf("\nBalances\n")
	tw = tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	for _, acc := range accounts {
		var st contract.Account
		if err := a.request(ctx, serviceLedger, a.cfg.LedgerQueue, events.QueryLedgerBalance, id(acc.name),
			events.LedgerBalanceQuery{AccountID: id(acc.name)}, &st); err != nil {
			return err
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", st.ID, formatMoney(st.Balance, st.Currency), st.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var stock []contract.StockLevel
	if err := a.request(ctx, serviceInventory, a.cfg.InventoryQueue, events.QueryInventoryStock, "",
		events.InventoryStockQuery{SKUs: []string{id("apple"), id("pear")}}, &stock); err != nil {
		return err
	}
	a.printf("\nStock\n")
	if err := a.showStock(stock); err != nil {
		return err
	}
	a.printf("\nRead an audit trail with: starter history %s\n", results[3].WorkflowID)
	return nil
}

// outcomeOf turns a saga's end into the summary's outcome and reason.
func outcomeOf(err error, decode func(any) error) (string, string) {
	if err != nil {
		return "failed", shortError(err)
	}
	var r struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	}
	if err := decode(&r); err != nil {
		return "unknown", shortError(err)
	}
	return r.Outcome, r.Reason
}

// publishOrder puts an order.placed event on the event exchange and
// returns the envelope and message it sent.
func (a *app) publishOrder(ctx context.Context, o events.OrderPlaced) (events.Envelope, amqp.Message, error) {
	env, err := events.New(events.TypeOrderPlaced, source, o, events.WithSubject(o.OrderID),
		events.WithCorrelationID(contract.OrderWorkflowID(o.OrderID)))
	if err != nil {
		return env, amqp.Message{}, &usageError{joinLines(err)}
	}
	m, err := amqp.MessageFromEnvelope(a.cfg.Exchange, env)
	if err != nil {
		return env, m, err
	}
	p, err := a.publisherFor(ctx)
	if err != nil {
		return env, m, err
	}
	if err := p.Publish(ctx, m); err != nil {
		if errors.Is(err, amqp.ErrUnroutable) {
			return env, m, fmt.Errorf("publish %s: no queue is bound to %s on %s (is the bridge running?)", env.ID, m.RoutingKey, m.Exchange)
		}
		return env, m, fmt.Errorf("publish %s: %w", env.ID, err)
	}
	return env, m, nil
}
