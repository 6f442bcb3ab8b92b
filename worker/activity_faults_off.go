//go:build !faults

package main

import (
	"flag"

	"go.temporal.io/sdk/interceptor"
)

// activityFaults is empty: only a worker built with the tag faults (the
// fault suite's) can make its activities fail, so this one reads no flag or
// environment variable for it and links no fault injector.
type activityFaults struct{}

// activityFaultsFlag registers nothing.
func activityFaultsFlag(*flag.FlagSet, func(name, def string) string) func() (activityFaults, error) {
	return func() (activityFaults, error) { return activityFaults{}, nil }
}

// faultInjector installs no interceptor.
func (p *process) faultInjector() ([]interceptor.WorkerInterceptor, error) { return nil, nil }
