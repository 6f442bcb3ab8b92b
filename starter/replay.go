package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/replay"
	"github.com/sagaflow/sagaflow/workflows"
)

// registerWorkflows registers the workflow code replay checks histories
// against: the sagas, as the worker registers them.
var registerWorkflows = workflows.Register

// replayRecentlyClosed is how far back the default query of replay reaches
// for closed sagas.
const replayRecentlyClosed = 7 * 24 * time.Hour

// maxReplayConcurrency bounds --concurrency.
const maxReplayConcurrency = 64

// replayDocument is what replay --json prints.
type replayDocument struct {
	// OK is true when every history replayed.
	OK bool `json:"ok"`
	// Source is "server" or "files".
	Source    string `json:"source"`
	Namespace string `json:"namespace,omitempty"`
	Query     string `json:"query,omitempty"`
	replay.Report
}

func (a *app) replayCommand() *cobra.Command {
	c := newCommand("replay [FILE|DIR]...", "Replay workflow histories against this binary's workflow code, before a deploy")
	c.Long = `replay replays workflow histories against the workflow code compiled into
this binary, registered as the worker registers it. A history the code no
longer reproduces (a non-deterministic change, not behind workflow.GetVersion)
fails, named with its error on one line; any failure exits 1.

Without arguments it replays from the server the workflows --query selects,
by default every open saga and the sagas closed in the last 7 days. With
files or folders (of *.json files) it replays histories as
'temporal workflow show --output json' writes them or the Web UI downloads
them. Encrypted payloads are read with --codec-keys.

Progress goes to stderr; the summary (or --json's document) to stdout.`
	query := c.Flags().String("query", "", "visibility query of the workflows to replay (default: the open sagas and those closed in the last 7 days)")
	limit := c.Flags().Int("limit", 0, "most workflows to replay from the server, newest first; 0: all the query selects")
	concurrency := c.Flags().Int("concurrency", 8, fmt.Sprintf("histories fetched and replayed at once, 1 to %d", maxReplayConcurrency))
	files := c.Flags().StringArray("file", nil, "a history file or a folder of them (repeatable; the same as an argument)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		paths := append(slices.Clone(*files), args...)
		if *concurrency < 1 || *concurrency > maxReplayConcurrency {
			return usagef("--concurrency %d: must be between 1 and %d", *concurrency, maxReplayConcurrency)
		}
		if *limit < 0 {
			return usagef("--limit %d: must not be negative", *limit)
		}
		if len(paths) > 0 && (cmd.Flags().Changed("query") || cmd.Flags().Changed("limit")) {
			return usagef("--query and --limit select workflows on the server; they do not go with files")
		}
		r, err := replay.New(replay.Options{Register: registerWorkflows, Codec: a.codec})
		if err != nil {
			return err
		}
		doc := replayDocument{Source: "files"}
		var jobs []replay.Job
		if len(paths) > 0 {
			if jobs, err = fileJobs(paths); err != nil {
				return err
			}
		} else {
			doc.Source, doc.Namespace, doc.Query = "server", a.cfg.Namespace, *query
			if doc.Query == "" {
				doc.Query = defaultReplayQuery(time.Now())
			}
			if jobs, err = a.serverJobs(cmd.Context(), doc.Query, *limit); err != nil {
				return err
			}
		}
		doc.Report = r.Run(cmd.Context(), jobs, replay.RunOptions{Concurrency: *concurrency, Progress: a.replayProgress()})
		doc.OK = doc.Failed == 0
		if a.cfg.JSON {
			if err := a.printJSON(doc); err != nil {
				return err
			}
		} else if err := a.printReplay(doc); err != nil {
			return err
		}
		if !doc.OK {
			return fmt.Errorf("%d of %d histories failed to replay", doc.Failed, doc.Replayed)
		}
		return nil
	}
	return c
}

// defaultReplayQuery selects the three sagas, open or closed since
// now minus replayRecentlyClosed.
func defaultReplayQuery(now time.Time) string {
	types := []string{contract.OrderWorkflowType, contract.ReservationWorkflowType, contract.TransferWorkflowType}
	quoted := make([]string, len(types))
	for i, t := range types {
		quoted[i] = "'" + t + "'"
	}
	return fmt.Sprintf("WorkflowType IN (%s) AND (ExecutionStatus = 'Running' OR CloseTime >= '%s')",
		strings.Join(quoted, ", "), now.Add(-replayRecentlyClosed).UTC().Format(time.RFC3339))
}

// fileJobs are the jobs of the history files named by paths: files as
// given, folders by their *.json files, recursively.
func fileJobs(paths []string) ([]replay.Job, error) {
	var jobs []replay.Job
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, usagef("%s", pathError(err))
		}
		if !info.IsDir() {
			jobs = append(jobs, replay.FileJob(p))
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".json") {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, usagef("%s", pathError(err))
		}
		if len(found) == 0 {
			return nil, usagef("%s: no history files (*.json) in this folder", p)
		}
		sort.Strings(found)
		for _, f := range found {
			jobs = append(jobs, replay.FileJob(f))
		}
	}
	return jobs, nil
}

func pathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

// serverJobs lists the workflows query selects, newest first, up to limit
// (0: all), as jobs that fetch their histories.
func (a *app) serverJobs(parent context.Context, query string, limit int) ([]replay.Job, error) {
	ctx, cancel := a.context(parent)
	defer cancel()
	tc, err := a.temporalClient(ctx)
	if err != nil {
		return nil, err
	}
	var jobs []replay.Job
	var token []byte
	for limit == 0 || len(jobs) < limit {
		page := int32(1000)
		if limit > 0 {
			page = int32(min(limit-len(jobs), 1000))
		}
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.cfg.Namespace, Query: query, PageSize: page, NextPageToken: token,
		})
		var invalid *serviceerror.InvalidArgument
		switch {
		case errors.As(err, &invalid):
			return nil, usagef("--query %q: %s", query, invalid.Message)
		case err != nil:
			return nil, fmt.Errorf("list workflows: %s", shortError(err))
		}
		for _, e := range resp.GetExecutions() {
			if limit > 0 && len(jobs) == limit {
				break
			}
			jobs = append(jobs, a.historyJob(tc, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), e.GetType().GetName()))
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return jobs, nil
}

// historyJob fetches one workflow's history, within --timeout.
func (a *app) historyJob(tc client.Client, workflowID, runID, workflowType string) replay.Job {
	return replay.Job{
		Name: workflowID, WorkflowID: workflowID, RunID: runID, WorkflowType: workflowType,
		Load: func(parent context.Context) (*replay.History, error) {
			ctx, cancel := a.context(parent)
			defer cancel()
			hist := &historypb.History{}
			iter := tc.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for iter.HasNext() {
				ev, err := iter.Next()
				if err != nil {
					return nil, fmt.Errorf("fetch history: %s", shortError(err))
				}
				hist.Events = append(hist.Events, ev)
			}
			return replay.FromEvents(workflowID, runID, hist)
		},
	}
}

// replayProgress reports on stderr, at most once a second, how far a run
// got; the summary says how it ended.
func (a *app) replayProgress() replay.Progress {
	last := time.Now()
	return func(done, total, failed int) {
		if done == total || time.Since(last) < time.Second && done%100 != 0 {
			return
		}
		last = time.Now()
		fmt.Fprintf(a.errOut, "replay: %d/%d histories, %d failed\n", done, total, failed)
	}
}

// printReplay prints one line per failure, then the counts.
func (a *app) printReplay(doc replayDocument) error {
	for _, f := range doc.Failures {
		var about []string
		if f.WorkflowType != "" {
			about = append(about, f.WorkflowType)
		}
		if f.RunID != "" {
			about = append(about, "run "+f.RunID)
		}
		if f.Source != "" && f.Source != f.Name() {
			about = append(about, f.Source)
		}
		detail := ""
		if len(about) > 0 {
			detail = " (" + strings.Join(about, ", ") + ")"
		}
		a.printf("FAIL %s%s: %s\n", f.Name(), detail, f.Error)
	}
	from := "files"
	if doc.Source == "server" {
		from = "namespace " + doc.Namespace
	}
	a.printf("replayed %d histories from %s: %d passed, %d failed\n", doc.Replayed, from, doc.Passed, doc.Failed)
	types := make([]string, 0, len(doc.ByType))
	for t := range doc.ByType {
		types = append(types, t)
	}
	sort.Strings(types)
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	for _, t := range types {
		c := doc.ByType[t]
		name := t
		if name == "" {
			name = "(unread)"
		}
		fmt.Fprintf(tw, "  %s\t%d replayed\t%d passed\t%d failed\n", name, c.Replayed, c.Passed, c.Failed)
	}
	return tw.Flush()
}
