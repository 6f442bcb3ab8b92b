package main

import (
	"bytes"
	"testing"

	"github.com/sagaflow/sagaflow/internal/systemtest"
)

// TestMain shares one Temporal dev server among the integration tests;
// unit tests never start it.
func TestMain(m *testing.M) { systemtest.Main(m) }

// runCLI runs the command line in-process with an empty environment plus
// env, returning the exit code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}
