package main

import (
	"fmt"
	"os"
	"path/filepath"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// RecordedSaga is the cost of one saga as the histories recorded in
// workflows/testdata show it, on the code before a change to its sequence
// of commands and after: the workflow's history and its children's.
type RecordedSaga struct {
	Name          string
	Before, After []string
	// BeforeTasks, AfterTasks, BeforeActions and AfterActions are summed
	// over the files.
	BeforeTasks, AfterTasks     TaskCounts
	BeforeActions, AfterActions Actions
}

// recordedSagas are the sagas the report compares before and after their
// versioned changes. The order before `workflows.OwnHoldChange` ran a
// reservation child, recorded in reservation_committed_by_parent.json,
// and, like the transfer before `workflows.LocalOutcomePublishChange`, a
// publish activity; the transfer files are the child's sequence of
// commands as it runs alone. After is the current code: the order at
// `workflows.OwnHoldChange` version 2, its commit and its transfer's steps
// run as local activities.
var recordedSagas = []RecordedSaga{
	{
		Name:   "order confirmed",
		Before: []string{"order_confirmed.json", "reservation_committed_by_parent.json", "transfer_completed.json"},
		After:  []string{"order_confirmed_v2.json", "transfer_completed_v2.json"},
	},
	{
		Name:   "transfer completed",
		Before: []string{"transfer_completed.json"},
		After:  []string{"transfer_completed_v2.json"},
	},
}

// countRecorded reads the recorded histories under dir and counts them.
func countRecorded(dir string) ([]RecordedSaga, error) {
	sum := func(files []string) (TaskCounts, Actions, error) {
		var tasks TaskCounts
		var actions Actions
		for _, name := range files {
			events, err := readHistoryFile(filepath.Join(dir, name))
			if err != nil {
				return tasks, actions, err
			}
			c, _ := countHistory(events)
			tasks, actions = tasks.Add(c), actions.Add(countActions(events))
		}
		return tasks, actions, nil
	}
	out := make([]RecordedSaga, 0, len(recordedSagas))
	for _, s := range recordedSagas {
		var err error
		if s.BeforeTasks, s.BeforeActions, err = sum(s.Before); err != nil {
			return nil, err
		}
		if s.AfterTasks, s.AfterActions, err = sum(s.After); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// readHistoryFile reads a history written by `temporal workflow show
// --output json`.
func readHistoryFile(path string) ([]*historypb.HistoryEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recorded history: %w", err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("recorded history %s: %w", path, err)
	}
	return h.GetEvents(), nil
}

// renderRecorded writes the before-and-after table of the recorded sagas.
func renderRecorded(p *printer, r *Report) {
	if len(r.Recorded) == 0 {
		return
	}
	p.f("### Before and after the versioned changes\n\n")
	p.f("Counted the same way from the histories recorded in `workflows/testdata`\n")
	p.f("(`make test` replays them): \"before\" on the code before the order ran its\n")
	p.f("own stock hold (`workflows.OwnHoldChange`) and the transfer published its\n")
	p.f("outcome from a local activity (`workflows.LocalOutcomePublishChange`), \"after\"\n")
	p.f("on today's. These counts depend on the workflows, not on the machine.\n\n")
	p.f("| saga | histories before | workflows | workflow tasks | activity tasks | billable actions | histories after | workflows | workflow tasks | activity tasks | billable actions |\n")
	p.f("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n")
	for _, s := range r.Recorded {
		p.f("| %s | %s | %d | %d | %d | %d | %s | %d | %d | %d | %d |\n", s.Name,
			codeList(s.Before), s.BeforeTasks.Workflows, s.BeforeTasks.WorkflowTasks, s.BeforeTasks.ActivityTasks, s.BeforeActions.Total(),
			codeList(s.After), s.AfterTasks.Workflows, s.AfterTasks.WorkflowTasks, s.AfterTasks.ActivityTasks, s.AfterActions.Total())
	}
	p.f("\n")
}

// codeList formats names as a comma-separated list of code spans.
func codeList(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += "`" + n + "`"
	}
	return out
}
