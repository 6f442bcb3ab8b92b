// Package storetest runs tests against every store engine: SQLite in a
// temporary directory and the PostgreSQL that testenv finds, each test in a
// schema of its own so that tests never see each other's rows.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/testenv"
	"github.com/sagaflow/sagaflow/services/store"
)

// ForEachEngine runs fn as a subtest on a fresh SQLite store and on a fresh
// PostgreSQL schema. In CI a missing PostgreSQL fails the test.
func ForEachEngine(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			fn(t, Open(t, engine))
		})
	}
}

// Open opens a fresh, migrated store of the engine, closed when the test ends.
func Open(t testing.TB, engine store.Engine) *store.DB {
	t.Helper()
	dsn := DSN(t, engine)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// DSN returns the DSN of a fresh, empty database of the engine: a file in
// the test's temporary directory, or a new PostgreSQL schema dropped when the
// test ends.
func DSN(t testing.TB, engine store.Engine) string {
	t.Helper()
	if engine == store.SQLite {
		return t.TempDir() + "/store.db"
	}
	base := testenv.PostgresDSN(t)
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	schema := schemaPrefix() + strings.ReplaceAll(uuid.NewString(), "-", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		testenv.Unavailable(t, "PostgreSQL at "+base, fmt.Sprintf("create schema: %v", err))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// EnvSchemaPrefix names the environment variable with the prefix of the
// PostgreSQL schemas the tests create (default "t_"), so that runs sharing
// one PostgreSQL can tell their schemas apart.
const EnvSchemaPrefix = "STORETEST_SCHEMA_PREFIX"

func schemaPrefix() string {
	if p := os.Getenv(EnvSchemaPrefix); p != "" {
		return p
	}
	return "t_"
}
