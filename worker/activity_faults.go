//go:build faults

package main

import (
	"flag"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/interceptor"

	"github.com/sagaflow/sagaflow/internal/faults"
)

// This file exists only in a worker built with the tag faults, which the
// fault suite builds: a production binary has neither the flag nor the
// environment variable, and cannot make its own activities fail.

// activityFaults says how activities fail at random.
type activityFaults = faults.Config

// activityFaultsFlag registers --activity-faults on fs and returns the
// function that parses its value once fs is parsed.
func activityFaultsFlag(fs *flag.FlagSet, env func(name, def string) string) func() (activityFaults, error) {
	v := fs.String("activity-faults", env(faults.EnvVar, ""), "FOR FAULT TESTS ONLY (a worker built with -tags faults): make activities fail at random, "+
		"e.g. transient=0.1,permanent=0.02,seed=42[,activities=A|B][,permanent_activities=Withdraw|Deposit]; empty disables it (env "+faults.EnvVar+")")
	return func() (activityFaults, error) {
		c, err := faults.Parse(*v)
		if err != nil {
			return c, fmt.Errorf("--activity-faults: %w", err)
		}
		return c, nil
	}
}

// faultInjector returns the interceptor that fails activities at random
// when --activity-faults is set, and counts what it injected on /metrics as
// sagaflow_injected_activity_faults_total.
func (p *process) faultInjector() ([]interceptor.WorkerInterceptor, error) {
	if !p.cfg.ActivityFaults.Enabled() {
		return nil, nil
	}
	inj, err := faults.New(p.cfg.ActivityFaults)
	if err != nil {
		return nil, err
	}
	for kind, n := range map[string]*atomic.Int64{"transient": &inj.Stats().Transient, "permanent": &inj.Stats().Permanent} {
		if err := p.registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "sagaflow_injected_activity_faults_total",
			Help:        "Activity failures injected by --activity-faults.",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 { return float64(n.Load()) })); err != nil {
			return nil, err
		}
	}
	p.logger.Warn("activity fault injection is on: activities fail at random (a test setting)", "faults", p.cfg.ActivityFaults.String())
	return []interceptor.WorkerInterceptor{inj}, nil
}
