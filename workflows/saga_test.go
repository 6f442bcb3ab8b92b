package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/contract"
)

// scenarioStep describes one step of a saga under test.
type scenarioStep struct {
	Name string
	// Outcome: "ok", "fail" (outcome unknown), "reject" (changed nothing),
	// or "block" (waits an hour, to be cancelled).
	Outcome string
	// CompFailures is how many runs of its compensation fail.
	CompFailures int
	// CompDelay is how long its compensation takes (on the workflow clock).
	CompDelay time.Duration
}

type scenario struct {
	Parallel, ContinueOnError bool
	Steps                     []scenarioStep
}

// scenarioWorkflow runs the steps with a Saga and compensates on failure.
// Its "log" query lists compensation runs as "undo:<step>@<seconds since
// start>", with "!" for a failed run.
func scenarioWorkflow(ctx workflow.Context, sc scenario) error {
	start := workflow.Now(ctx)
	var log []string
	if err := workflow.SetQueryHandler(ctx, "log", func() ([]string, error) { return log, nil }); err != nil {
		return err
	}
	saga, err := NewSaga(ctx, SagaOptions{ParallelCompensation: sc.Parallel, ContinueOnCompensationError: sc.ContinueOnError})
	if err != nil {
		return err
	}
	runs := make(map[string]int)
	for _, st := range sc.Steps {
		undo := func(ctx workflow.Context) error {
			at := workflow.Now(ctx).Sub(start).Seconds()
			if st.CompDelay > 0 {
				// Fails if ctx is the cancelled workflow context.
				if err := workflow.Sleep(ctx, st.CompDelay); err != nil {
					return err
				}
			}
			runs[st.Name]++
			if runs[st.Name] <= st.CompFailures {
				log = append(log, fmt.Sprintf("undo:%s@%.0f!", st.Name, at))
				return temporal.NewApplicationError("undo "+st.Name+" failed", "UndoFailed")
			}
			log = append(log, fmt.Sprintf("undo:%s@%.0f", st.Name, at))
			return nil
		}
		err := saga.Step(ctx, st.Name, func(ctx workflow.Context) error {
			switch st.Outcome {
			case "fail":
				return temporal.NewApplicationError(st.Name+" timed out", "Timeout")
			case "reject":
				return temporal.NewNonRetryableApplicationError(st.Name+" rejected", "Rejected", nil)
			case "block":
				return workflow.Sleep(ctx, time.Hour)
			}
			return nil
		}, undo)
		if err != nil {
			if cerr := saga.Compensate(ctx, err); cerr != nil {
				return cerr
			}
			return err
		}
	}
	return saga.Complete(ctx)
}

func runScenario(t *testing.T, sc scenario, callbacks map[time.Duration]func(env *testsuite.TestWorkflowEnvironment)) (*testsuite.TestWorkflowEnvironment, []string, contract.SagaState) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	for d, cb := range callbacks {
		env.RegisterDelayedCallback(func() { cb(env) }, d)
	}
	env.ExecuteWorkflow(scenarioWorkflow, sc)
	require.True(t, env.IsWorkflowCompleted())
	v, err := env.QueryWorkflow("log")
	require.NoError(t, err)
	var log []string
	require.NoError(t, v.Get(&log))
	v, err = env.QueryWorkflow(contract.QueryStatus)
	require.NoError(t, err)
	var st contract.SagaState
	require.NoError(t, v.Get(&st))
	return env, log, st
}

func signal(name, operator string) func(env *testsuite.TestWorkflowEnvironment) {
	return func(env *testsuite.TestWorkflowEnvironment) {
		env.SignalWorkflow(name, contract.OperatorAction{Operator: operator, Reason: "checked the ledger"})
	}
}

func TestSaga(t *testing.T) {
	tests := []struct {
		name      string
		sc        scenario
		callbacks map[time.Duration]func(env *testsuite.TestWorkflowEnvironment)
		wantErr   []string // substrings of the workflow error; nil for success
		log       []string
		status    contract.SagaStatus
		completed []string
		comps     []contract.CompensationStatus
	}{
		{
			name:      "all steps succeed: nothing undone",
			sc:        scenario{Steps: []scenarioStep{{Name: "a", Outcome: "ok"}, {Name: "b", Outcome: "ok"}}},
			log:       nil,
			status:    contract.StatusCompleted,
			completed: []string{"a", "b"},
			comps:     []contract.CompensationStatus{contract.CompensationRegistered, contract.CompensationRegistered},
		},
		{
			// The failed step's own compensation runs first: it may have taken
			// effect before it failed.
			name:      "failure undoes in reverse order, the failed step included",
			sc:        scenario{Steps: []scenarioStep{{Name: "a", Outcome: "ok"}, {Name: "b", Outcome: "ok"}, {Name: "c", Outcome: "fail"}}},
			wantErr:   []string{"c timed out"},
			log:       []string{"undo:c@0", "undo:b@0", "undo:a@0"},
			status:    contract.StatusCompensated,
			completed: []string{"a", "b"},
			comps:     []contract.CompensationStatus{contract.CompensationSucceeded, contract.CompensationSucceeded, contract.CompensationSucceeded},
		},
		{
			name:      "a rejected step changed nothing: its compensation is dropped",
			sc:        scenario{Steps: []scenarioStep{{Name: "a", Outcome: "ok"}, {Name: "b", Outcome: "reject"}}},
			wantErr:   []string{"b rejected"},
			log:       []string{"undo:a@0"},
			status:    contract.StatusCompensated,
			completed: []string{"a"},
			comps:     []contract.CompensationStatus{contract.CompensationSucceeded, contract.CompensationDropped},
		},
		{
			name: "sequential compensations take turns",
			sc: scenario{Steps: []scenarioStep{
				{Name: "a", Outcome: "ok", CompDelay: time.Minute},
				{Name: "b", Outcome: "ok", CompDelay: time.Minute},
				{Name: "c", Outcome: "reject"},
			}},
			wantErr:   []string{"c rejected"},
			log:       []string{"undo:b@0", "undo:a@60"},
			status:    contract.StatusCompensated,
			completed: []string{"a", "b"},
			comps:     []contract.CompensationStatus{contract.CompensationSucceeded, contract.CompensationSucceeded, contract.CompensationDropped},
		},
		{
			name: "parallel compensations start together",
			sc: scenario{Parallel: true, Steps: []scenarioStep{
				{Name: "a", Outcome: "ok", CompDelay: time.Minute},
				{Name: "b", Outcome: "ok", CompDelay: time.Minute},
				{Name: "c", Outcome: "reject"},
			}},
			wantErr:   []string{"c rejected"},
			log:       []string{"undo:b@0", "undo:a@0"},
			status:    contract.StatusCompensated,
			completed: []string{"a", "b"},
			comps:     []contract.CompensationStatus{contract.CompensationSucceeded, contract.CompensationSucceeded, contract.CompensationDropped},
		},
		{
			name: "a failing compensation stops the rest until an operator retries",
			sc: scenario{Steps: []scenarioStep{
				{Name: "a", Outcome: "ok"},
				{Name: "b", Outcome: "ok", CompFailures: 1},
				{Name: "c", Outcome: "reject"},
			}},
			callbacks: map[time.Duration]func(*testsuite.TestWorkflowEnvironment){time.Hour: signal(contract.SignalRetryCompensation, "alice")},
			wantErr:   []string{"c rejected"},
			log:       []string{"undo:b@0!", "undo:b@3600", "undo:a@3600"},
			status:    contract.StatusCompensated,
			completed: []string{"a", "b"},
			comps:     []contract.CompensationStatus{contract.CompensationSucceeded, contract.CompensationSucceeded, contract.CompensationDropped},
		},
		{
			name: "continue on error runs the rest; resolve records both errors",
			sc: scenario{ContinueOnError: true, Steps: []scenarioStep{
				{Name: "a", Outcome: "ok"},
				{Name: "b", Outcome: "ok", CompFailures: 10},
				{Name: "c", Outcome: "reject"},
			}},
			callbacks: map[time.Duration]func(*testsuite.TestWorkflowEnvironment){time.Hour: signal(contract.SignalResolve, "bob")},
			wantErr:   []string{"c rejected", "undo b failed", "resolved by bob"},
			log:       []string{"undo:b@0!", "undo:a@0"},
			status:    contract.StatusResolved,
			completed: []string{"a", "b"},
			comps:     []contract.CompensationStatus{contract.CompensationSucceeded, contract.CompensationFailed, contract.CompensationDropped},
		},
		{
			name: "cancellation compensates on a disconnected context",
			sc: scenario{Steps: []scenarioStep{
				{Name: "a", Outcome: "ok", CompDelay: time.Second},
				{Name: "b", Outcome: "block", CompDelay: time.Second},
			}},
			callbacks: map[time.Duration]func(*testsuite.TestWorkflowEnvironment){time.Minute: func(env *testsuite.TestWorkflowEnvironment) { env.CancelWorkflow() }},
			wantErr:   []string{"canceled"},
			log:       []string{"undo:b@60", "undo:a@61"},
			status:    contract.StatusCancelled,
			completed: []string{"a"},
			comps:     []contract.CompensationStatus{contract.CompensationSucceeded, contract.CompensationSucceeded},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, log, st := runScenario(t, tc.sc, tc.callbacks)
			err := env.GetWorkflowError()
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				for _, s := range tc.wantErr {
					require.ErrorContains(t, err, s)
				}
			}
			require.Equal(t, tc.log, log)
			require.Equal(t, tc.status, st.Status)
			require.Equal(t, tc.completed, st.CompletedSteps)
			got := make([]contract.CompensationStatus, len(st.Compensations))
			for i, c := range st.Compensations {
				got[i] = c.Status
			}
			require.Equal(t, tc.comps, got)
		})
	}
}

func TestSagaResolutionIsRecorded(t *testing.T) {
	sc := scenario{Steps: []scenarioStep{{Name: "a", Outcome: "ok", CompFailures: 1}, {Name: "b", Outcome: "reject"}}}
	_, _, st := runScenario(t, sc, map[time.Duration]func(*testsuite.TestWorkflowEnvironment){
		time.Hour: signal(contract.SignalResolve, "carol"),
	})
	require.Equal(t, contract.StatusResolved, st.Status)
	require.Equal(t, &contract.OperatorAction{Operator: "carol", Reason: "checked the ledger"}, st.Resolution)
	require.Contains(t, st.Failure, "b rejected")
	require.Equal(t, 1, st.Compensations[0].Runs)
	require.Contains(t, st.Compensations[0].Error, "undo a failed")
}

func TestCompensationErrorUnwrapsEveryError(t *testing.T) {
	cause := temporal.NewApplicationError("deposit failed", "X")
	undo := temporal.NewApplicationError("refund failed", "Y")
	err := &CompensationError{Cause: cause, Failed: []FailedCompensation{{Name: "refund", Err: undo}}, Resolution: contract.OperatorAction{Operator: "dan", Reason: "manual"}}
	require.ErrorIs(t, err, cause)
	require.ErrorIs(t, err, undo)
	require.ErrorContains(t, err, "refund: refund failed")
	require.ErrorContains(t, err, "resolved by dan")
}
