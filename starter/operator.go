package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/contract"
)

// maxOperatorTargets bounds the sagas one --query acts on.
const maxOperatorTargets = 10000

// operatorVerb is one of the operator's actions on a saga parked in
// CompensationFailed.
type operatorVerb struct {
	// command is the CLI command, signal the saga's signal.
	command, signal string
	// done and would describe a result: "resolved", "would resolve".
	done, would string
	// reasonRequired makes --reason mandatory.
	reasonRequired bool
	defaultReason  string
}

var (
	resolveVerb = operatorVerb{command: "resolve", signal: contract.SignalResolve, done: "resolved", would: "would resolve",
		reasonRequired: true}
	retryVerb = operatorVerb{command: "retry-compensation", signal: contract.SignalRetryCompensation, done: "retrying", would: "would retry",
		defaultReason: "retry from the command line"}
)

// operatorResult is what an operator command did with one saga.
type operatorResult struct {
	WorkflowID   string `json:"workflow_id"`
	RunID        string `json:"run_id,omitempty"`
	WorkflowType string `json:"workflow_type,omitempty"`
	// SagaStatus is the saga's status before the action.
	SagaStatus string `json:"saga_status,omitempty"`
	// Result is resolved, retrying, would resolve, would retry, skipped or
	// failed.
	Result string `json:"result"`
	// Detail says why a saga was skipped or failed, or what was sent.
	Detail string `json:"detail,omitempty"`
}

// operatorReport is an operator command's --json output.
type operatorReport struct {
	Action   string           `json:"action"`
	Query    string           `json:"query,omitempty"`
	DryRun   bool             `json:"dry_run"`
	Operator string           `json:"operator"`
	Reason   string           `json:"reason"`
	Sagas    []operatorResult `json:"sagas"`
	Acted    int              `json:"acted"`
	Skipped  int              `json:"skipped"`
	Failed   int              `json:"failed"`
}

func (a *app) resolveCommand() *cobra.Command {
	return a.operatorCommand(resolveVerb,
		"End sagas whose compensation failed, by saga id or --query, with a reason recorded in their histories")
}

func (a *app) retryCompensationCommand() *cobra.Command {
	return a.operatorCommand(retryVerb,
		"Rerun the failed compensations of sagas waiting for an operator, by saga id or --query")
}

func (a *app) operatorCommand(v operatorVerb, short string) *cobra.Command {
	c := newCommand(v.command+" [SAGA-ID]", short)
	c.Long = short + `.

A saga whose compensation failed waits in SagaStatus CompensationFailed for an
operator. This command sends it the ` + v.signal + ` signal with who acts and why
(contract.OperatorAction), which stays in its history: 'starter history ID'
shows it as an operator line. Sagas that are not waiting for an operator are
skipped and named. --query takes a Temporal visibility query, e.g.
  --query 'SagaStatus="CompensationFailed" AND WorkflowType="OrderWorkflow"'`
	c.Args = cobra.MaximumNArgs(1)
	query := c.Flags().String("query", "", "act on every saga this visibility query matches")
	reasonHelp := "why, recorded in each saga's history"
	if v.reasonRequired {
		reasonHelp += "; required"
	} else {
		reasonHelp += " (default \"" + v.defaultReason + "\")"
	}
	reason := c.Flags().String("reason", "", reasonHelp)
	operator := c.Flags().String("operator", "", "who acts, recorded in each saga's history (default $USER)")
	dryRun := c.Flags().Bool("dry-run", false, "show which sagas would be acted on, and send nothing")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if (len(args) == 1) == (*query != "") {
			return usagef("give a saga id or --query, one of them")
		}
		why := strings.TrimSpace(*reason)
		if why == "" {
			if v.reasonRequired {
				return usagef("--reason is required: say why, it is recorded in the saga's history")
			}
			why = v.defaultReason
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		tc, err := a.temporalClient(ctx)
		if err != nil {
			return err
		}
		var ids []string
		if *query != "" {
			if ids, err = a.matchingSagas(ctx, tc, *query); err != nil {
				return err
			}
		} else {
			ids = args
		}
		action := contract.OperatorAction{Operator: a.operator(*operator), Reason: why}
		rep := operatorReport{Action: v.command, Query: *query, DryRun: *dryRun, Operator: action.Operator, Reason: action.Reason, Sagas: []operatorResult{}}
		prog := &operatorProgress{w: a.errOut, tty: isTerminal(a.errOut), total: len(ids), quiet: len(args) == 1}
		for _, id := range ids {
			r, err := a.actOn(ctx, tc, v, id, action, *dryRun)
			if err != nil && len(args) == 1 {
				return err // a single unknown saga is the caller's mistake
			}
			rep.Sagas = append(rep.Sagas, r)
			switch r.Result {
			case "skipped":
				rep.Skipped++
			case "failed":
				rep.Failed++
			default:
				rep.Acted++
			}
			prog.step(r)
			if !a.cfg.JSON {
				a.printf("%-14s %s  %s\n", r.Result, r.WorkflowID, r.Detail)
			}
		}
		prog.finish()
		if a.cfg.JSON {
			if err := a.printJSON(rep); err != nil {
				return err
			}
		} else if len(ids) == 0 {
			a.printf("No saga matches %s\n", *query)
		} else if len(ids) > 1 {
			a.printf("%d saga(s): %d %s, %d skipped, %d failed\n", len(ids), rep.Acted, v.verbText(*dryRun), rep.Skipped, rep.Failed)
		}
		switch {
		case rep.Failed > 0:
			return fmt.Errorf("%s failed for %d of %d saga(s)", v.command, rep.Failed, len(ids))
		case len(args) == 1 && rep.Skipped == 1:
			return fmt.Errorf("%s: %s", rep.Sagas[0].WorkflowID, rep.Sagas[0].Detail)
		}
		return nil
	}
	return c
}

func (v operatorVerb) verbText(dryRun bool) string {
	if dryRun {
		return v.would
	}
	return v.done
}

// matchingSagas lists the workflow ids a visibility query matches, each once.
func (a *app) matchingSagas(ctx context.Context, tc client.Client, query string) ([]string, error) {
	var ids []string
	seen := map[string]bool{}
	var token []byte
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.cfg.Namespace, Query: query, PageSize: 1000, NextPageToken: token,
		})
		var invalid *serviceerror.InvalidArgument
		switch {
		case errors.As(err, &invalid):
			return nil, usagef("--query %q does not parse: %s", query, oneLine(invalid.Message, 200))
		case err != nil:
			return nil, fmt.Errorf("list sagas for --query: %s", shortError(err))
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if len(ids) > maxOperatorTargets {
			return nil, usagef("--query matches more than %d sagas: narrow it", maxOperatorTargets)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return ids, nil
		}
	}
}

// actOn sends v's signal to one saga if it waits for an operator. The error
// is set only for a saga that does not exist.
func (a *app) actOn(ctx context.Context, tc client.Client, v operatorVerb, id string, action contract.OperatorAction, dryRun bool) (operatorResult, error) {
	r := operatorResult{WorkflowID: id}
	desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		err = describeError(id, err)
		r.Result, r.Detail = "failed", err.Error()
		return r, err
	}
	info := desc.GetWorkflowExecutionInfo()
	r.RunID, r.WorkflowType = info.GetExecution().GetRunId(), info.GetType().GetName()
	r.SagaStatus = sagaStatusOf(desc)
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || r.SagaStatus != string(contract.StatusCompensationFailed) {
		saga := r.SagaStatus
		if saga == "" {
			saga = "none"
		}
		r.Result = "skipped"
		r.Detail = fmt.Sprintf("not waiting for an operator (status %s, saga %s)",
			info.GetStatus(), saga)
		return r, nil
	}
	if dryRun {
		r.Result = v.would
		r.Detail = fmt.Sprintf("%s would get %s by %s: %s", r.WorkflowType, v.signal, action.Operator, action.Reason)
		return r, nil
	}
	// Signalled to the run just described: if it ended meanwhile, the
	// signal fails rather than reach a newer run.
	if err := tc.SignalWorkflow(ctx, id, r.RunID, v.signal, action); err != nil {
		r.Result, r.Detail = "failed", fmt.Sprintf("signal %s: %s", v.signal, shortError(err))
		return r, nil
	}
	r.Result = v.done
	r.Detail = fmt.Sprintf("%s signalled %s by %s: %s", r.WorkflowType, v.signal, action.Operator, action.Reason)
	return r, nil
}

// operatorProgress shows how far a batch got on stderr: a bar rewritten in
// place on a terminal, a line every tenth of the way otherwise.
type operatorProgress struct {
	w           io.Writer
	tty, quiet  bool
	total, done int
	lastTenth   int
}

func (p *operatorProgress) step(r operatorResult) {
	p.done++
	if p.quiet || p.total == 0 {
		return
	}
	if p.tty {
		const width = 30
		filled := p.done * width / p.total
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d sagas %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.done, p.total, r.WorkflowID)
		return
	}
	if tenth := p.done * 10 / p.total; tenth > p.lastTenth || p.done == p.total {
		p.lastTenth = tenth
		fmt.Fprintf(p.w, "%d/%d sagas\n", p.done, p.total)
	}
}

func (p *operatorProgress) finish() {
	if p.tty && !p.quiet && p.total > 0 {
		fmt.Fprintln(p.w)
	}
}
