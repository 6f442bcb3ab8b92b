package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMetricSum(t *testing.T) {
	const metrics = `# HELP sagaflow_amqp_published_total Messages written to the broker.
# TYPE sagaflow_amqp_published_total counter
sagaflow_amqp_published_total{connection="worker"} 1234
sagaflow_amqp_published_total{connection="services"} 6
sagaflow_amqp_published_total_other 99
sagaflow_amqp_confirmed_total{connection="worker"} 1240
`
	got, err := metricSum(strings.NewReader(metrics), "sagaflow_amqp_published_total")
	require.NoError(t, err)
	require.InDelta(t, 1240.0, got, 1e-9, "every label set, not metrics whose name merely starts the same")

	got, err = metricSum(strings.NewReader("plain_total 3.5e+03\n"), "plain_total")
	require.NoError(t, err)
	require.InDelta(t, 3500.0, got, 1e-9)

	_, err = metricSum(strings.NewReader(metrics), "sagaflow_missing_total")
	require.ErrorContains(t, err, "not found")
}

func TestStatusBytes(t *testing.T) {
	const status = "Name:\tworker\nVmPeak:\t 2000000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n"
	got, err := statusBytes(strings.NewReader(status), "VmHWM")
	require.NoError(t, err)
	require.Equal(t, int64(51200*1024), got)
	got, err = statusBytes(strings.NewReader(status), "VmRSS")
	require.NoError(t, err)
	require.Equal(t, int64(40000*1024), got, "not VmHWM, not another field starting alike")

	_, err = statusBytes(strings.NewReader("Name:\tworker\n"), "VmHWM")
	require.ErrorContains(t, err, "VmHWM not found")
}

func TestMetricByLabel(t *testing.T) {
	const metrics = `# HELP sagaflow_worker_setting The Temporal worker's settings.
# TYPE sagaflow_worker_setting gauge
sagaflow_worker_setting{setting="max_concurrent_activities"} 200
sagaflow_worker_setting{setting="max_concurrent_workflow_tasks"} 150
sagaflow_worker_setting{setting="pollers"} 4
sagaflow_worker_settings_other{setting="pollers"} 99
`
	got, err := metricByLabel(strings.NewReader(metrics), workerSettingMetric, "setting")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"pollers": 4, "max_concurrent_workflow_tasks": 150, "max_concurrent_activities": 200}, got)

	got, err = metricByLabel(strings.NewReader("go_goroutines 12\n"), workerSettingMetric, "setting")
	require.NoError(t, err)
	require.Empty(t, got, "a worker without the workflows part states no settings")
}
