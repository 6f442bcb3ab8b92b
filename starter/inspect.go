package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/audit"
)

// statusView is what status prints.
type statusView struct {
	WorkflowID   string    `json:"workflow_id"`
	RunID        string    `json:"run_id"`
	WorkflowType string    `json:"workflow_type"`
	Status       string    `json:"status"`
	SagaStatus   string    `json:"saga_status,omitempty"`
	StartTime    time.Time `json:"start_time"`
	CloseTime    time.Time `json:"close_time,omitzero"`
	TaskQueue    string    `json:"task_queue"`
	// Version is the Worker Deployment version (the build) the saga runs
	// on; nil for an unversioned saga.
	Version *audit.Version `json:"version,omitempty"`
	URL     string         `json:"url"`
	// TraceID is the saga's OpenTelemetry trace (its memo); TraceURL its
	// page in the trace viewer (OTEL_TRACE_UI_URL).
	TraceID  string `json:"trace_id,omitempty"`
	TraceURL string `json:"trace_url,omitempty"`
	// State is the answer of the saga's status query.
	State json.RawMessage `json:"state,omitempty"`
	// QueryError says why the status query could not be answered (no
	// worker polls the task queue, for instance).
	QueryError string           `json:"query_error,omitempty"`
	Pending    []pendingView    `json:"pending_activities,omitempty"`
	Children   []map[string]any `json:"pending_children,omitempty"`
}

type pendingView struct {
	ActivityType string    `json:"activity_type"`
	State        string    `json:"state"`
	Attempt      int32     `json:"attempt"`
	LastFailure  string    `json:"last_failure,omitempty"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	// RetriesUntil is when Temporal stops retrying the activity: the
	// saga's deadline for a forward step (its schedule-to-close timeout).
	RetriesUntil time.Time `json:"retries_until,omitzero"`
}

func (a *app) statusCommand() *cobra.Command {
	c := newCommand("status WORKFLOW-ID", "Show a saga's progress: its status query and what Temporal knows of it")
	c.Args = cobra.ExactArgs(1)
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
		v := statusView{
			WorkflowID: id, RunID: info.GetExecution().GetRunId(), WorkflowType: info.GetType().GetName(),
			Status: info.GetStatus().String(), StartTime: info.GetStartTime().AsTime(), TaskQueue: info.GetTaskQueue(),
			URL: a.cfg.workflowURL(id), SagaStatus: sagaStatusOf(desc), Version: audit.DescribedVersion(info),
			TraceID: audit.TraceID(info.GetMemo(), a.codec.DataConverter()),
		}
		v.TraceURL = a.traceCfg.TraceURL(v.TraceID)
		if info.GetCloseTime() != nil {
			v.CloseTime = info.GetCloseTime().AsTime()
		}
		for _, p := range desc.GetPendingActivities() {
			pv := pendingView{ActivityType: p.GetActivityType().GetName(), State: p.GetState().String(), Attempt: p.GetAttempt()}
			if f := p.GetLastFailure(); f != nil {
				pv.LastFailure = f.GetMessage()
			}
			if t := p.GetNextAttemptScheduleTime(); t != nil {
				pv.NextAttempt = t.AsTime()
			}
			if t := p.GetExpirationTime(); t != nil && t.AsTime().After(time.Unix(0, 0)) {
				pv.RetriesUntil = t.AsTime()
			}
			v.Pending = append(v.Pending, pv)
		}
		for _, ch := range desc.GetPendingChildren() {
			v.Children = append(v.Children, map[string]any{"workflow_id": ch.GetWorkflowId(), "workflow_type": ch.GetWorkflowTypeName()})
		}
		resp, qerr := tc.QueryWorkflow(ctx, id, "", contract.QueryStatus)
		if qerr == nil {
			var state json.RawMessage
			if err := resp.Get(&state); err == nil {
				v.State = state
			} else {
				// Without the key, the answer is encrypted; the codec's
				// error names the key it needs.
				v.QueryError = shortError(err)
			}
		} else {
			v.QueryError = shortError(qerr)
		}
		if a.cfg.JSON {
			return a.printJSON(v)
		}
		a.printStatus(v)
		return nil
	}
	return c
}

// printStatus writes status's view for people.
func (a *app) printStatus(v statusView) {
	a.printf("%s (%s), run %s\n", v.WorkflowID, v.WorkflowType, v.RunID)
	a.printf("  status:  %s", v.Status)
	if v.SagaStatus != "" {
		a.printf(", saga %s", v.SagaStatus)
	}
	a.printf("\n  started: %s", stamp(v.StartTime))
	if !v.CloseTime.IsZero() {
		a.printf(", closed %s", stamp(v.CloseTime))
	}
	a.printf("\n  build:   %s\n", buildLine(v.Version))
	a.printf("  ui:      %s\n", v.URL)
	if v.TraceID != "" {
		a.printf("  trace:   %s\n", v.TraceID)
		if v.TraceURL != "" {
			a.printf("           %s\n", v.TraceURL)
		}
	}
	if v.State != nil {
		var pretty strings.Builder
		var st map[string]any
		if json.Unmarshal(v.State, &st) == nil {
			keys := make([]string, 0, len(st))
			for k := range st {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				b, _ := json.Marshal(st[k])
				fmt.Fprintf(&pretty, "    %s: %s\n", k, b)
			}
		}
		a.printf("  state:\n%s", pretty.String())
	} else {
		a.printf("  state:   unavailable (%s)\n", v.QueryError)
	}
	for _, p := range v.Pending {
		a.printf("  %s\n", pendingLine(p))
	}
	for _, ch := range v.Children {
		a.printf("  child:   %s (%s): starter status %s\n", ch["workflow_id"], ch["workflow_type"], ch["workflow_id"])
	}
	a.printf("  audit:   starter history %s\n", v.WorkflowID)
}

// pendingLine says what a pending activity does: one that failed before
// is waiting, with its attempt, its last failure and until when it is
// retried ("waiting: Withdraw attempt 7, last failure: ..., retries until
// ...").
func pendingLine(p pendingView) string {
	var b strings.Builder
	state := strings.ToLower(strings.TrimPrefix(p.State, "PENDING_ACTIVITY_STATE_"))
	if p.Attempt > 1 || p.LastFailure != "" {
		fmt.Fprintf(&b, "waiting: %s attempt %d (%s)", p.ActivityType, p.Attempt, state)
	} else {
		fmt.Fprintf(&b, "pending: %s %s, attempt %d", p.ActivityType, state, p.Attempt)
	}
	if p.LastFailure != "" {
		b.WriteString(", last failure: " + p.LastFailure)
	}
	if !p.NextAttempt.IsZero() {
		b.WriteString(", next attempt " + stamp(p.NextAttempt))
	}
	if !p.RetriesUntil.IsZero() {
		b.WriteString(", retries until " + stamp(p.RetriesUntil))
	}
	return b.String()
}

// buildLine names the build a saga runs on: "sagaflow:b1 (Pinned)", or
// "unversioned" when its worker runs without Worker Versioning.
func buildLine(v *audit.Version) string {
	if v == nil {
		return "unversioned"
	}
	if v.Behavior == "" {
		return v.String()
	}
	return v.String() + " (" + v.Behavior + ")"
}

// sagaStatusOf reads the SagaStatus search attribute of a described
// workflow.
func sagaStatusOf(desc *workflowservice.DescribeWorkflowExecutionResponse) string {
	p, ok := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[contract.SagaStatusKey.GetName()]
	if !ok {
		return ""
	}
	var s string
	_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	return s
}

func (a *app) historyCommand() *cobra.Command {
	c := newCommand("history WORKFLOW-ID", "Show a saga's audit trail: its steps, retries, compensations, children, signals and outcome")
	c.Args = cobra.ExactArgs(1)
	runID := c.Flags().String("run", "", "run id (default: the latest run)")
	full := c.Flags().Bool("full", false, "show inputs, results and errors in full instead of cut at 160 characters")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id := args[0]
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		tc, err := a.temporalClient(ctx)
		if err != nil {
			return err
		}
		desc, err := tc.DescribeWorkflowExecution(ctx, id, *runID)
		if err != nil {
			return describeError(id, err)
		}
		var evs []*historypb.HistoryEvent
		it := tc.GetWorkflowHistory(ctx, id, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), false, 0)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return fmt.Errorf("read history of %s: %s", id, shortError(err))
			}
			evs = append(evs, e)
		}
		tl := audit.Build(evs, desc, audit.Options{DataConverter: a.codec.DataConverter()})
		if a.cfg.JSON {
			return a.printJSON(tl)
		}
		opts := audit.TextOptions{TraceURL: a.traceCfg.TraceURL}
		if *full {
			opts.MaxValue = -1
		}
		if err := audit.WriteText(a.out, tl, opts); err != nil {
			return err
		}
		a.printf("\n  ui: %s\n", a.cfg.workflowURL(id))
		return nil
	}
	return c
}

// listRow is one saga of list.
type listRow struct {
	WorkflowID   string    `json:"workflow_id"`
	RunID        string    `json:"run_id"`
	WorkflowType string    `json:"workflow_type"`
	Status       string    `json:"status"`
	SagaStatus   string    `json:"saga_status,omitempty"`
	StartTime    time.Time `json:"start_time"`
	CloseTime    time.Time `json:"close_time,omitzero"`
}

// listFilter is the visibility filter of list.
type listFilter struct {
	SagaStatus, Customer, Order, Type string
}

// query builds the visibility query. Values may not hold quotes, so no
// value can change the query's meaning.
func (f listFilter) query() (string, error) {
	var parts []string
	add := func(flag, attr, v string) error {
		if v == "" {
			return nil
		}
		if strings.ContainsAny(v, `'"\`) {
			return usagef("--%s %q: quotes and backslashes are not allowed", flag, v)
		}
		parts = append(parts, fmt.Sprintf("%s = '%s'", attr, v))
		return nil
	}
	if f.SagaStatus != "" && !slices.Contains(sagaStatuses, f.SagaStatus) {
		return "", usagef("--status %q: want one of %s", f.SagaStatus, strings.Join(sagaStatuses, ", "))
	}
	for _, c := range []struct{ flag, attr, v string }{
		{"status", contract.SagaStatusKey.GetName(), f.SagaStatus}, {"customer", contract.CustomerIDKey.GetName(), f.Customer},
		{"order", contract.OrderIDKey.GetName(), f.Order}, {"type", "WorkflowType", f.Type},
	} {
		if err := add(c.flag, c.attr, c.v); err != nil {
			return "", err
		}
	}
	return strings.Join(parts, " AND "), nil
}

var sagaStatuses = []string{
	string(contract.StatusRunning), string(contract.StatusCompensating), string(contract.StatusCompleted),
	string(contract.StatusCompensated), string(contract.StatusCompensationFailed), string(contract.StatusCancelled),
	string(contract.StatusResolved),
}

func (a *app) listCommand() *cobra.Command {
	c := newCommand("list", "List sagas, newest first, filtered by saga status, customer, order or workflow type")
	var f listFilter
	c.Flags().StringVar(&f.SagaStatus, "status", "", "saga status: "+strings.Join(sagaStatuses, ", "))
	c.Flags().StringVar(&f.Customer, "customer", "", "customer id (orders)")
	c.Flags().StringVar(&f.Order, "order", "", "order id (orders)")
	c.Flags().StringVar(&f.Type, "type", "", "workflow type, e.g. TransferWorkflow, OrderWorkflow, ReserveInventoryWorkflow")
	limit := c.Flags().Int("limit", 20, "most sagas to show")
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		q, err := f.query()
		if err != nil {
			return err
		}
		if *limit <= 0 {
			return usagef("--limit %d: must be positive", *limit)
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		tc, err := a.temporalClient(ctx)
		if err != nil {
			return err
		}
		var rows []listRow
		var token []byte
		for len(rows) < *limit {
			resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: a.cfg.Namespace, Query: q, PageSize: int32(min(*limit, 1000)), NextPageToken: token,
			})
			if err != nil {
				return fmt.Errorf("list sagas: %s", shortError(err))
			}
			for _, e := range resp.GetExecutions() {
				r := listRow{
					WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
					WorkflowType: e.GetType().GetName(), Status: e.GetStatus().String(), StartTime: e.GetStartTime().AsTime(),
				}
				if e.GetCloseTime() != nil {
					r.CloseTime = e.GetCloseTime().AsTime()
				}
				if p, ok := e.GetSearchAttributes().GetIndexedFields()[contract.SagaStatusKey.GetName()]; ok {
					_ = converter.GetDefaultDataConverter().FromPayload(p, &r.SagaStatus)
				}
				rows = append(rows, r)
			}
			token = resp.GetNextPageToken()
			if len(token) == 0 {
				break
			}
		}
		slices.SortStableFunc(rows, func(x, y listRow) int { return y.StartTime.Compare(x.StartTime) })
		if len(rows) > *limit {
			rows = rows[:*limit]
		}
		if a.cfg.JSON {
			if rows == nil {
				rows = []listRow{}
			}
			return a.printJSON(rows)
		}
		tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKFLOW ID\tTYPE\tSTATUS\tSAGA\tSTARTED")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.WorkflowID, r.WorkflowType, r.Status, r.SagaStatus, stamp(r.StartTime))
		}
		return tw.Flush()
	}
	return c
}
