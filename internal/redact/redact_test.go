package redact_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/redact"
)

func TestURL(t *testing.T) {
	require.Equal(t, "amqp://guest:***@127.0.0.1:5672/", redact.URL("amqp://guest:guest@127.0.0.1:5672/"))
	require.Equal(t, "postgres://u:***@db/x?sslmode=disable", redact.URL("postgres://u:p@ss@db/x?sslmode=disable"))
	require.Equal(t, "postgres://root@db/test", redact.URL("postgres://root@db/test"))
	require.Equal(t, ".data/ledger.db", redact.URL(".data/ledger.db"))
}
