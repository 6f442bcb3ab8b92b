package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStarterLinksNoServiceOrDatabaseDriver keeps the CLI a client: it
// speaks to the services through the contract and the events catalog, so it
// links neither a service package nor the database drivers they bring.
func TestStarterLinksNoServiceOrDatabaseDriver(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/sagaflow/sagaflow/contract", "sanity: the list holds the module's packages")
	for _, dep := range deps {
		for _, banned := range []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/sagaflow/sagaflow/services/"} {
			require.False(t, strings.HasPrefix(dep, banned), "starter depends on %s", dep)
		}
	}
}

// goTool is the go command on PATH, or the one of the toolchain that built
// the test.
func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	_, err := exec.LookPath(p)
	require.NoError(t, err, "no go command on PATH or in GOROOT")
	return p
}
