package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/metrics"
)

func TestReconnectsAreCountedByNode(t *testing.T) {
	var stats amqp.Stats
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterAMQP(reg, "worker", &stats))
	stats.CountReconnect("rabbit-1:5672")
	stats.CountReconnect("rabbit-2:5672")
	stats.CountReconnect("rabbit-2:5672")

	expected := `
# HELP sagaflow_amqp_reconnects_total Reconnections after a lost broker connection, by the node (host:port) reached.
# TYPE sagaflow_amqp_reconnects_total counter
sagaflow_amqp_reconnects_total{connection="worker",node="rabbit-1:5672"} 1
sagaflow_amqp_reconnects_total{connection="worker",node="rabbit-2:5672"} 2
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "sagaflow_amqp_reconnects_total"))
	require.EqualValues(t, 3, stats.Reconnects.Load())
}
