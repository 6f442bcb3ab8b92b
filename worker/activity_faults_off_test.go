//go:build !faults

package main

import (
	"bytes"
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

// activityFaultsEnv is the variable the fault suite's worker build reads
// (internal/faults.EnvVar), spelled out: this build must not link faults.
const activityFaultsEnv = "SAGAFLOW_ACTIVITY_FAULTS"

func TestProductionWorkerHasNoFaultInjection(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, env(nil), &out)
	require.True(t, errors.Is(err, flag.ErrHelp))
	require.NotContains(t, out.String(), activityFaultsEnv)
	require.NotContains(t, out.String(), "activity-faults")

	_, err = parseConfig([]string{"--activity-faults", "transient=1"}, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, "flag provided but not defined: -activity-faults")

	var read []string
	getenv := func(k string) string {
		read = append(read, k)
		if k == activityFaultsEnv {
			return "transient=2" // invalid: an error if it were parsed
		}
		return ""
	}
	_, err = parseConfig(nil, getenv, &bytes.Buffer{})
	require.NoError(t, err)
	require.NotEmpty(t, read)
	require.NotContains(t, read, activityFaultsEnv, "the production worker never reads it")

	p := &process{cfg: config{ActivityFaults: activityFaults{}}}
	interceptors, err := p.faultInjector()
	require.NoError(t, err)
	require.Empty(t, interceptors)
}
