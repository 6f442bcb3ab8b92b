package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// settingMetric is the gauge family that states the worker's Temporal
// settings on /metrics, one sample per setting, so that a dashboard or a
// benchmark reads what the process runs with rather than assuming the
// defaults.
const settingMetric = "sagaflow_worker_setting"

// registerSettings puts the Temporal worker's settings on the registry:
// pollers (per task type), concurrent workflow tasks and concurrent
// activities.
func registerSettings(registry prometheus.Registerer, cfg config) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: settingMetric,
		Help: "The Temporal worker's settings: pollers for workflow and for activity tasks, workflow tasks and activities run at once.",
	}, []string{"setting"})
	g.WithLabelValues("pollers").Set(float64(cfg.Pollers))
	g.WithLabelValues("max_concurrent_workflow_tasks").Set(float64(cfg.MaxConcurrentWorkflows))
	g.WithLabelValues("max_concurrent_activities").Set(float64(cfg.MaxConcurrentActivities))
	return registry.Register(g)
}
