package faults_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/sagaflow/sagaflow/internal/faults"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    faults.Config
		wantErr string
	}{
		{name: "empty", in: "", want: faults.Config{}},
		{name: "full", in: "transient=0.1, permanent=0.02,seed=42,activities=Withdraw|Deposit",
			want: faults.Config{Transient: 0.1, Permanent: 0.02, Seed: 42, Activities: []string{"Withdraw", "Deposit"}}},
		{name: "transient only", in: "transient=1", want: faults.Config{Transient: 1}},
		{name: "permanent on steps", in: "transient=0.1,permanent=0.1,permanent_activities=Withdraw|ReserveInventory",
			want: faults.Config{Transient: 0.1, Permanent: 0.1, PermanentActivities: []string{"Withdraw", "ReserveInventory"}}},
		{name: "unknown key", in: "latency=1s", wantErr: "unknown key"},
		{name: "not key=value", in: "transient", wantErr: "not key=value"},
		{name: "bad number", in: "permanent=lots", wantErr: "permanent"},
		{name: "out of range", in: "transient=1.5", wantErr: "not between 0 and 1"},
		{name: "sum above one", in: "transient=0.6,permanent=0.6", wantErr: "add up to more than 1"},
		{name: "empty activity", in: "transient=0.1,activities=Withdraw|", wantErr: "empty activity name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := faults.Parse(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := faults.Parse(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String is read back by Parse")
		})
	}
}

func TestDecideIsReproducibleAndNearTheRates(t *testing.T) {
	inj, err := faults.New(faults.Config{Transient: 0.1, Permanent: 0.05, Seed: 7})
	require.NoError(t, err)
	other, err := faults.New(faults.Config{Transient: 0.1, Permanent: 0.05, Seed: 8})
	require.NoError(t, err)
	const n = 20000
	counts := map[faults.Kind]int{}
	differ := 0
	for i := range n {
		wf, act := fmt.Sprintf("transfer-%d", i), "5"
		k := inj.Decide("Withdraw", wf, act, 1)
		require.Equal(t, k, inj.Decide("Withdraw", wf, act, 1), "same inputs, same decision")
		if k != other.Decide("Withdraw", wf, act, 1) {
			differ++
		}
		counts[k]++
		require.NotEqual(t, faults.Permanent, inj.Decide("Withdraw", wf, act, 2), "permanent faults hit first attempts only")
	}
	require.InDelta(t, 0.05*n, counts[faults.Permanent], 0.01*n)
	require.InDelta(t, 0.1*n, counts[faults.Transient], 0.01*n)
	require.Positive(t, differ, "another seed chooses other attempts")
}

func TestDecideOnlyListedActivities(t *testing.T) {
	inj, err := faults.New(faults.Config{Transient: 1, Activities: []string{"Deposit"}})
	require.NoError(t, err)
	require.Equal(t, faults.Transient, inj.Decide("Deposit", "wf", "1", 3))
	require.Equal(t, faults.None, inj.Decide("Withdraw", "wf", "1", 3))

	steps, err := faults.New(faults.Config{Permanent: 1, PermanentActivities: []string{"Withdraw"}})
	require.NoError(t, err)
	require.Equal(t, faults.Permanent, steps.Decide("Withdraw", "wf", "1", 1))
	require.Equal(t, faults.None, steps.Decide("PublishTransferEvent", "wf", "1", 1), "not listed: never fails permanently")

	off, err := faults.New(faults.Config{})
	require.NoError(t, err)
	require.Equal(t, faults.None, off.Decide("Deposit", "wf", "1", 1))
}

func Withdraw(context.Context, string) (string, error) { return "withdrawn", nil }

func TestInterceptorFailsAttempts(t *testing.T) {
	cases := []struct {
		name          string
		cfg           faults.Config
		wantType      string
		wantRetryable bool
	}{
		{name: "no fault", cfg: faults.Config{}},
		{name: "transient", cfg: faults.Config{Transient: 1}, wantType: faults.ErrTypeTransient, wantRetryable: true},
		{name: "permanent", cfg: faults.Config{Permanent: 1}, wantType: faults.ErrTypePermanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inj, err := faults.New(tc.cfg)
			require.NoError(t, err)
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestActivityEnvironment()
			env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{inj}})
			env.RegisterActivity(Withdraw)
			val, err := env.ExecuteActivity(Withdraw, "alice")
			if tc.wantType == "" {
				require.NoError(t, err)
				var got string
				require.NoError(t, val.Get(&got))
				require.Equal(t, "withdrawn", got)
				require.Zero(t, inj.Stats().Transient.Load()+inj.Stats().Permanent.Load())
				return
			}
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "%v", err)
			require.Equal(t, tc.wantType, appErr.Type())
			require.Equal(t, tc.wantRetryable, !appErr.NonRetryable())
			require.Equal(t, int64(1), inj.Stats().Transient.Load()+inj.Stats().Permanent.Load())
		})
	}
}
