package replay

import (
	"context"
	"errors"
	"os"
	"slices"
	"sort"
	"sync"
)

// Job is one history to load and replay.
type Job struct {
	// Name identifies the job when it cannot be loaded: a file path, or
	// the workflow id and run id.
	Name string
	// WorkflowID, RunID and WorkflowType are what is known before loading
	// (from a visibility listing); empty for a file.
	WorkflowID, RunID, WorkflowType string
	// Load reads or fetches the history.
	Load func(ctx context.Context) (*History, error)
}

// FileJob is the Job of the history file path.
func FileJob(path string) Job {
	return Job{Name: path, Load: func(context.Context) (*History, error) { return ReadFile(path) }}
}

// Result is the outcome of one history.
type Result struct {
	WorkflowID   string `json:"workflow_id,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	WorkflowType string `json:"workflow_type,omitempty"`
	// Source is the file the history came from; empty for a server.
	Source string `json:"source,omitempty"`
	Passed bool   `json:"passed"`
	// Kind and Error say why it failed.
	Kind  Kind   `json:"kind,omitempty"`
	Error string `json:"error,omitempty"`
}

// Name is how the result is named in a report: the workflow id, else the
// file.
func (r Result) Name() string {
	if r.WorkflowID != "" {
		return r.WorkflowID
	}
	return r.Source
}

// Counts are how many histories were replayed, passed and failed.
type Counts struct {
	Replayed int `json:"replayed"`
	Passed   int `json:"passed"`
	Failed   int `json:"failed"`
}

func (c *Counts) add(r Result) {
	c.Replayed++
	if r.Passed {
		c.Passed++
	} else {
		c.Failed++
	}
}

// Report is the outcome of a run.
type Report struct {
	Counts
	// ByType counts per workflow type; histories of unknown type (not
	// loaded) count under "".
	ByType map[string]*Counts `json:"by_type"`
	// Failures are the failed histories, by name.
	Failures []Result `json:"failures"`
}

// Progress is called after each history with how many are done, how many
// there are and how many failed so far. Calls are serialised.
type Progress func(done, total, failed int)

// RunOptions tune Run.
type RunOptions struct {
	// Concurrency is how many histories are loaded and replayed at once.
	// Default 1.
	Concurrency int
	// Progress, when set, is told about every history done.
	Progress Progress
}

// Run loads and replays every job, opts.Concurrency at a time, and reports
// the outcome. A cancelled ctx fails the jobs not yet loaded.
func (r *Replayer) Run(ctx context.Context, jobs []Job, opts RunOptions) Report {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	results := make([]Result, len(jobs))
	var (
		mu     sync.Mutex
		done   int
		failed int
		wg     sync.WaitGroup
	)
	slots := make(chan struct{}, opts.Concurrency)
	for i, job := range jobs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			results[i] = r.runOne(ctx, job)
			mu.Lock()
			defer mu.Unlock()
			done++
			if !results[i].Passed {
				failed++
			}
			if opts.Progress != nil {
				opts.Progress(done, len(jobs), failed)
			}
		}()
	}
	wg.Wait()

	rep := Report{ByType: map[string]*Counts{}, Failures: []Result{}}
	for _, res := range results {
		rep.add(res)
		c := rep.ByType[res.WorkflowType]
		if c == nil {
			c = &Counts{}
			rep.ByType[res.WorkflowType] = c
		}
		c.add(res)
		if !res.Passed {
			rep.Failures = append(rep.Failures, res)
		}
	}
	sort.SliceStable(rep.Failures, func(i, j int) bool { return rep.Failures[i].Name() < rep.Failures[j].Name() })
	return rep
}

func (r *Replayer) runOne(ctx context.Context, job Job) Result {
	res := Result{WorkflowID: job.WorkflowID, RunID: job.RunID, WorkflowType: job.WorkflowType}
	if res.WorkflowID == "" {
		res.Source = job.Name
	}
	fail := func(f *Failure) Result {
		res.Kind, res.Error = f.Kind, f.Error()
		return res
	}
	if err := ctx.Err(); err != nil {
		return fail(&Failure{KindUnreadable, err})
	}
	if job.WorkflowType != "" && !slices.Contains(r.types, job.WorkflowType) {
		return fail(r.unknownType(job.WorkflowType)) // not worth fetching
	}
	h, err := job.Load(ctx)
	if err != nil {
		var nah *NotAHistoryError
		if errors.As(err, &nah) {
			return fail(&Failure{KindNotAHistory, err})
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is the result's source
		}
		return fail(&Failure{KindUnreadable, err})
	}
	if h.WorkflowID != "" {
		res.WorkflowID = h.WorkflowID
	}
	if h.RunID != "" {
		res.RunID = h.RunID
	}
	res.WorkflowType = h.WorkflowType
	res.Source = h.Source
	if f := r.Replay(h); f != nil {
		return fail(f)
	}
	res.Passed = true
	return res
}
