package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
)

// TestSettingsAreOnMetrics: the Temporal worker's settings, defaults and
// set ones alike, are on /metrics as the process parsed them.
func TestSettingsAreOnMetrics(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want map[string]float64
	}{
		{"defaults", nil, map[string]float64{"pollers": 4, "max_concurrent_workflow_tasks": 200, "max_concurrent_activities": 200}},
		{"set", map[string]string{"TEMPORAL_POLLERS": "16", "MAX_CONCURRENT_WORKFLOW_TASKS": "50", "MAX_CONCURRENT_ACTIVITIES": "70"},
			map[string]float64{"pollers": 16, "max_concurrent_workflow_tasks": 50, "max_concurrent_activities": 70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(nil, env(tt.env), &bytes.Buffer{})
			require.NoError(t, err)
			reg := prometheus.NewPedanticRegistry()
			require.NoError(t, registerSettings(reg, cfg))
			families, err := reg.Gather()
			require.NoError(t, err)
			got := map[string]float64{}
			for _, f := range families {
				if f.GetName() != settingMetric {
					continue
				}
				for _, m := range f.GetMetric() {
					got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
				}
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// TestWorkflowTasksArePolledByAutoscaledPollers: the worker polls
// workflow tasks with poller autoscaling, which keeps pollers on the task
// queue however long the sticky queue's backlog, so that the first task of
// a new workflow is not starved; a fixed poller count (which the SDK
// would prefer over the behavior) is not set.
func TestWorkflowTasksArePolledByAutoscaledPollers(t *testing.T) {
	cfg, err := parseConfig(nil, env(map[string]string{"TEMPORAL_POLLERS": "6"}), &bytes.Buffer{})
	require.NoError(t, err)
	opts := workerOptions(cfg, nil)
	require.Zero(t, opts.MaxConcurrentWorkflowTaskPollers, "a fixed count would take precedence over the behavior")
	require.Equal(t, fmt.Sprintf("%T", worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})),
		fmt.Sprintf("%T", opts.WorkflowTaskPollerBehavior))
	require.Equal(t, workflowTaskPollers(6), opts.WorkflowTaskPollerBehavior, "up to --pollers on each queue")
	require.Equal(t, 6, opts.MaxConcurrentActivityTaskPollers, "activity tasks have no sticky queue: a fixed count")
}
