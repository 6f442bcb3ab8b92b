package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// started is what a start command prints (and --json emits).
type started struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// AlreadyStarted is true when the id was running already: the command
	// attached to that saga instead of starting another.
	AlreadyStarted bool   `json:"already_started"`
	URL            string `json:"url"`
	// Result is the saga's result, with --wait.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is the saga's failure, with --wait.
	Error string `json:"error,omitempty"`
}

// alreadyRanError is a start whose id belongs to a saga that already ended:
// the id policies never run an id twice.
type alreadyRanError struct {
	WorkflowID, RunID, Status string
}

func (e *alreadyRanError) Error() string {
	return fmt.Sprintf("%s already ran (status %s, run %s) and its id is not reused; see 'starter history %s'",
		e.WorkflowID, e.Status, e.RunID, e.WorkflowID)
}

// startSaga starts a workflow with the saga's own start options. The
// options' conflict policy (use the existing run) is applied here rather
// than by the server, so the CLI can say "already started": the start fails
// on any existing id, and a running one is attached to.
func (a *app) startSaga(ctx context.Context, opts client.StartWorkflowOptions, workflow any, wait bool, input any) error {
	c, err := a.temporalClient(ctx)
	if err != nil {
		return err
	}
	out := started{WorkflowID: opts.ID, URL: a.cfg.workflowURL(opts.ID)}
	run, err := c.ExecuteWorkflow(ctx, opts, workflow, input)
	var dup *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &dup):
		desc, derr := c.DescribeWorkflowExecution(ctx, opts.ID, "")
		if derr != nil {
			return fmt.Errorf("%s already started (run %s); describe it: %w", opts.ID, dup.RunId, derr)
		}
		info := desc.GetWorkflowExecutionInfo()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return &alreadyRanError{WorkflowID: opts.ID, RunID: info.GetExecution().GetRunId(), Status: info.GetStatus().String()}
		}
		out.AlreadyStarted = true
		run = c.GetWorkflow(ctx, opts.ID, info.GetExecution().GetRunId())
	case err != nil:
		return fmt.Errorf("start %s: %s", opts.ID, shortError(err))
	}
	out.RunID = run.GetRunID()
	if !a.cfg.JSON {
		if out.AlreadyStarted {
			a.printf("Already started: %s is running (run %s); attached to it\n", out.WorkflowID, out.RunID)
		} else {
			a.printf("Started %s (run %s)\n", out.WorkflowID, out.RunID)
		}
		a.printf("  %s\n", out.URL)
	}
	if !wait {
		if a.cfg.JSON {
			return a.printJSON(out)
		}
		return nil
	}
	var result json.RawMessage
	werr := run.Get(ctx, &result)
	out.Result = result
	if werr != nil {
		out.Error = werr.Error()
	}
	if a.cfg.JSON {
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else if werr == nil {
		a.printf("Result: %s\n", result)
	}
	if werr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s still running after --timeout %s; follow it with 'starter status %s'", opts.ID, a.cfg.Timeout, opts.ID)
		}
		return fmt.Errorf("%s failed: %s", opts.ID, shortError(werr))
	}
	return nil
}

// newID returns a fresh business id.
func newID() string { return uuid.NewString()[:8] }

func (a *app) transferCommand() *cobra.Command {
	c := newCommand("transfer", "Start a money transfer saga (TransferWorkflow)")
	from := c.Flags().String("from", "", "source account; required")
	to := c.Flags().String("to", "", "target account; required")
	amount := c.Flags().String("amount", "", "amount: minor units (1250) or a decimal (12.50); required")
	currency := c.Flags().String("currency", "EUR", "ISO 4217 currency")
	id := c.Flags().String("id", "", "transfer id (default: generated); the workflow id is transfer-<id>")
	deadline := c.Flags().String("deadline", "", fmt.Sprintf(deadlineFlagUsage, contract.DefaultTransferDeadline))
	wait := c.Flags().Bool("wait", false, "wait for the saga's result and print it")
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		in, err := transferInput(*from, *to, *amount, *currency, *id)
		if err != nil {
			return err
		}
		if in.Deadline, err = parseDeadline(*deadline, time.Now()); err != nil {
			return err
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		return a.startSaga(ctx, contract.TransferStartOptions(in.TransferID, a.cfg.TaskQueue), contract.TransferWorkflowType, *wait, in)
	}
	return c
}

// transferInput validates the transfer flags.
func transferInput(from, to, amount, currency, id string) (contract.TransferInput, error) {
	if from == "" || to == "" {
		return contract.TransferInput{}, usagef("--from and --to are required")
	}
	if from == to {
		return contract.TransferInput{}, usagef("--from and --to are the same account %q", from)
	}
	cur, err := parseCurrency(currency)
	if err != nil {
		return contract.TransferInput{}, err
	}
	n, err := parseAmount(amount, cur)
	if err != nil {
		return contract.TransferInput{}, err
	}
	if id == "" {
		id = newID()
	}
	in := contract.TransferInput{TransferID: id, SourceAccountID: from, TargetAccountID: to, Amount: n, Currency: cur}
	if err := in.Validate(); err != nil {
		return contract.TransferInput{}, &usageError{joinLines(err)}
	}
	return in, nil
}

func (a *app) reserveCommand() *cobra.Command {
	c := newCommand("reserve", "Start an inventory reservation saga (ReserveInventoryWorkflow)")
	var lines []string
	c.Flags().StringArrayVar(&lines, "line", nil, "sku:quantity to reserve, repeatable (e.g. --line apple:2 --line pear:1); required")
	order := c.Flags().String("order", "", "order the stock is held for (optional)")
	ttl := c.Flags().Duration("ttl", contract.DefaultReservationTTL, "how long the stock is held before it is released as expired")
	id := c.Flags().String("id", "", "reservation id (default: generated); the workflow id is reservation-<id>")
	deadline := c.Flags().String("deadline", "", fmt.Sprintf(deadlineFlagUsage, contract.DefaultReservationDeadline))
	wait := c.Flags().Bool("wait", false, "wait for the saga's result and print it (it ends on commit, release or expiry)")
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		in, err := reservationInput(lines, *order, *id, *ttl)
		if err != nil {
			return err
		}
		if in.Deadline, err = parseDeadline(*deadline, time.Now()); err != nil {
			return err
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		return a.startSaga(ctx, contract.ReservationStartOptions(in.ReservationID, a.cfg.TaskQueue), contract.ReservationWorkflowType, *wait, in)
	}
	return c
}

func reservationInput(lines []string, order, id string, ttl time.Duration) (contract.ReservationInput, error) {
	if len(lines) == 0 {
		return contract.ReservationInput{}, usagef("at least one --line sku:quantity is required")
	}
	var stock []events.StockLine
	for _, l := range lines {
		sl, err := parseStockLine(l)
		if err != nil {
			return contract.ReservationInput{}, err
		}
		stock = append(stock, sl)
	}
	if ttl <= 0 {
		return contract.ReservationInput{}, usagef("--ttl %s: must be positive", ttl)
	}
	if id == "" {
		id = newID()
	}
	in := contract.ReservationInput{ReservationID: id, OrderID: order, Lines: stock, TTL: ttl}
	if err := in.Validate(); err != nil {
		return contract.ReservationInput{}, &usageError{joinLines(err)}
	}
	return in, nil
}

// orderFlags are the flags of order and publish.
type orderFlags struct {
	id, customer, merchant, currency, deadline string
	lines                                      []string
}

func (f *orderFlags) bind(c *cobra.Command) {
	c.Flags().StringVar(&f.id, "id", "", "order id (default: generated); the workflow id is order-<id>")
	c.Flags().StringVar(&f.customer, "customer", "", "customer account; required")
	c.Flags().StringVar(&f.merchant, "merchant", "", "merchant account; required")
	c.Flags().StringVar(&f.currency, "currency", "EUR", "ISO 4217 currency of the prices")
	c.Flags().StringArrayVar(&f.lines, "line", nil, "sku:quantity:unit-price, repeatable (e.g. --line apple:2:150 --line pear:1:0.99); required")
	c.Flags().StringVar(&f.deadline, "deadline", "", "the order's payment window: "+fmt.Sprintf(deadlineFlagUsage, contract.DefaultOrderDeadline))
}

// order validates the flags into an order.placed payload.
func (f *orderFlags) order() (events.OrderPlaced, error) {
	if f.customer == "" || f.merchant == "" {
		return events.OrderPlaced{}, usagef("--customer and --merchant are required")
	}
	cur, err := parseCurrency(f.currency)
	if err != nil {
		return events.OrderPlaced{}, err
	}
	if len(f.lines) == 0 {
		return events.OrderPlaced{}, usagef("at least one --line sku:quantity:unit-price is required")
	}
	var lines []events.OrderLine
	for _, l := range f.lines {
		ol, err := parseOrderLine(l, cur)
		if err != nil {
			return events.OrderPlaced{}, err
		}
		lines = append(lines, ol)
	}
	total, err := orderTotal(lines)
	if err != nil {
		return events.OrderPlaced{}, err
	}
	id := f.id
	if id == "" {
		id = newID()
	}
	deadline, err := parseDeadline(f.deadline, time.Now())
	if err != nil {
		return events.OrderPlaced{}, err
	}
	o := events.OrderPlaced{OrderID: id, CustomerID: f.customer, MerchantID: f.merchant, Lines: lines, Currency: cur, Total: total, Deadline: deadline}
	if err := o.Validate(); err != nil {
		return events.OrderPlaced{}, &usageError{joinLines(err)}
	}
	return o, nil
}

func (a *app) orderCommand() *cobra.Command {
	c := newCommand("order", "Start an order saga (OrderWorkflow) directly on Temporal")
	var f orderFlags
	f.bind(c)
	wait := c.Flags().Bool("wait", false, "wait for the saga's result and print it")
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		o, err := f.order()
		if err != nil {
			return err
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		return a.startSaga(ctx, contract.OrderStartOptions(o, a.cfg.TaskQueue), contract.OrderWorkflowType, *wait, o)
	}
	return c
}

// published is what publish prints.
type published struct {
	EventID    string `json:"event_id"`
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
	WorkflowID string `json:"workflow_id"`
	URL        string `json:"url"`
	// Result is the saga's result, with --wait.
	Result json.RawMessage `json:"result,omitempty"`
}

func (a *app) publishCommand() *cobra.Command {
	c := newCommand("publish", "Publish an order.placed event; the bridge starts the order saga")
	var f orderFlags
	f.bind(c)
	wait := c.Flags().Bool("wait", false, "wait until the bridge started the saga and it ended, and print its result")
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		o, err := f.order()
		if err != nil {
			return err
		}
		wfID := contract.OrderWorkflowID(o.OrderID)
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		env, m, err := a.publishOrder(ctx, o)
		if err != nil {
			return err
		}
		out := published{EventID: env.ID, Exchange: m.Exchange, RoutingKey: m.RoutingKey, WorkflowID: wfID, URL: a.cfg.workflowURL(wfID)}
		if !a.cfg.JSON {
			a.printf("Published %s %s for order %s; the bridge starts %s\n  %s\n", env.Type, env.ID, o.OrderID, wfID, out.URL)
		}
		if *wait {
			res, err := a.awaitWorkflow(ctx, wfID)
			if err != nil {
				return err
			}
			out.Result = res
			if !a.cfg.JSON {
				a.printf("Result: %s\n", res)
			}
		}
		if a.cfg.JSON {
			return a.printJSON(out)
		}
		return nil
	}
	return c
}

// awaitWorkflow waits for a workflow another process starts (the bridge),
// then for its result.
func (a *app) awaitWorkflow(ctx context.Context, id string) (json.RawMessage, error) {
	c, err := a.temporalClient(ctx)
	if err != nil {
		return nil, err
	}
	// Polling: Temporal offers no notification of a workflow that does not
	// exist yet.
	for {
		_, err := c.DescribeWorkflowExecution(ctx, id, "")
		var nf *serviceerror.NotFound
		if err == nil {
			break
		}
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("wait for %s: %s", id, shortError(err))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s was not started within --timeout %s (is the bridge running?)", id, a.cfg.Timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
	var res json.RawMessage
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
		return nil, fmt.Errorf("%s failed: %s", id, shortError(err))
	}
	return res, nil
}

func (a *app) cancelCommand() *cobra.Command {
	c := newCommand("cancel WORKFLOW-ID", "Cancel a saga: an order through its cancel update, any other by a cancellation request")
	c.Args = cobra.ExactArgs(1)
	reason := c.Flags().String("reason", "cancelled from the command line", "why, recorded in the saga's history")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id := args[0]
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		tc, err := a.temporalClient(ctx)
		if err != nil {
			return err
		}
		desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return describeError(id, err)
		}
		info := desc.GetWorkflowExecutionInfo()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			saga := ""
			if s := sagaStatusOf(desc); s != "" {
				saga = ", saga " + s
			}
			return fmt.Errorf("%s has ended (status %s%s) and can no longer be cancelled", id, info.GetStatus(), saga)
		}
		if info.GetType().GetName() == contract.OrderWorkflowType {
			h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
				WorkflowID: id, UpdateName: contract.SignalCancel,
				Args: []any{contract.CancelRequest{Reason: *reason}}, WaitForStage: client.WorkflowUpdateStageCompleted,
			})
			if err != nil {
				return fmt.Errorf("cancel %s: %s", id, shortError(err))
			}
			var res json.RawMessage
			if err := h.Get(ctx, &res); err != nil {
				return fmt.Errorf("cancel %s refused: %s", id, shortError(err))
			}
			if a.cfg.JSON {
				return a.printJSON(map[string]any{"workflow_id": id, "method": "update", "result": res})
			}
			a.printf("Cancel accepted by %s: %s\n", id, res)
			return nil
		}
		if err := tc.CancelWorkflow(ctx, id, ""); err != nil {
			return fmt.Errorf("cancel %s: %s", id, shortError(err))
		}
		if a.cfg.JSON {
			return a.printJSON(map[string]any{"workflow_id": id, "method": "request-cancel"})
		}
		a.printf("Cancellation requested for %s; it compensates and ends. Follow it with 'starter status %s'\n", id, id)
		return nil
	}
	return c
}

// describeError explains a failed describe: an unknown workflow id is the
// user's mistake.
func describeError(id string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no workflow %s in this namespace", id)
	}
	return fmt.Errorf("describe %s: %s", id, shortError(err))
}
