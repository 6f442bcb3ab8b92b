package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFaultInjectorIsLinkedOnlyWithTheFaultsTag: the fault injector is a
// test tool; a worker built without the tag faults must not contain it.
func TestFaultInjectorIsLinkedOnlyWithTheFaultsTag(t *testing.T) {
	const pkg = "github.com/sagaflow/sagaflow/internal/faults"
	deps := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command("go", append([]string{"list", "-deps"}, append(args, ".")...)...)
		out, err := cmd.Output()
		require.NoError(t, err, "go list -deps %v", args)
		return strings.Fields(string(out))
	}
	require.NotContains(t, deps(), pkg, "the default worker links the fault injector")
	require.Contains(t, deps("-tags", "faults"), pkg, "the fault suite's worker build lost its fault injector")
}
