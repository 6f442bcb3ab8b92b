package main

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/audit"
	"github.com/sagaflow/sagaflow/internal/systemtest"
)

// TestStatusAndHistoryShowTheBuildOfAVersionedSaga runs a transfer on a
// worker of a Worker Deployment: status and history name the build it ran
// on, pinned.
func TestStatusAndHistoryShowTheBuildOfAVersionedSaga(t *testing.T) {
	deployment := "sagaflow-" + uuid.NewString()[:8]
	sys := systemtest.Start(t, systemtest.Options{Deployment: deployment, BuildID: "build-7"})
	s := &liveSystem{System: sys, args: []string{
		"--address", sys.TemporalAddress, "--namespace", "default", "--task-queue", sys.TaskQueue,
		"--amqp-url", sys.AMQPURL, "--ui-url", "http://ui.test", "--timeout", "60s",
	}}
	suffix := newID()
	alice, bob := "alice-"+suffix, "bob-"+suffix
	s.cli(t, exitOK, "account", "open", alice, "--currency", "EUR", "--initial", "100.00")
	s.cli(t, exitOK, "account", "open", bob, "--currency", "EUR")
	out, _ := s.cli(t, exitOK, "transfer", "--from", alice, "--to", bob, "--amount", "1.00", "--id", suffix, "--wait", "--json")
	var res started
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	wf := res.WorkflowID

	out, _ = s.cli(t, exitOK, "status", wf)
	require.Contains(t, out, "  build:   "+deployment+":build-7 (Pinned)\n")
	out, _ = s.cli(t, exitOK, "status", wf, "--json")
	var st statusView
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, &audit.Version{DeploymentName: deployment, BuildID: "build-7", Behavior: "Pinned"}, st.Version)

	out, _ = s.cli(t, exitOK, "history", wf)
	require.Contains(t, out, "  build:   "+deployment+":build-7 (Pinned)\n")
	out, _ = s.cli(t, exitOK, "history", wf, "--json")
	var tl audit.Timeline
	require.NoError(t, json.Unmarshal([]byte(out), &tl))
	require.Len(t, tl.Versions, 1, "every workflow task on one build")
	require.Equal(t, "build-7", tl.Versions[0].BuildID)
	require.Equal(t, "Pinned", tl.Versions[0].Behavior)
	require.Positive(t, tl.Versions[0].WorkflowTasks)
}
