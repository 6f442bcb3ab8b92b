package store_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStoreKnowsNoBroker keeps the layering: the outbox relay publishes
// through store.Publisher, and only the code that wires it (services/command)
// links a broker client.
func TestStoreKnowsNoBroker(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/sagaflow/sagaflow/services/store", "go list ran on the store package")
	for _, forbidden := range []string{"github.com/sagaflow/sagaflow/amqp", "github.com/rabbitmq/amqp091-go"} {
		require.NotContains(t, deps, forbidden, "services/store must not depend on %s", forbidden)
	}
}
