package repo_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/repo"
)

func TestRootFindsGoMod(t *testing.T) {
	root, err := repo.Root()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Equal(t, root, filepath.Dir(filepath.Dir(mustGetwd(t))), "two levels above internal/repo")
}

func TestRootOutsideARepository(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := repo.Root()
	require.ErrorContains(t, err, "go.mod not found")
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	require.NoError(t, err)
	return wd
}
