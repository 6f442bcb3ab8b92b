package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sagaflow/sagaflow/internal/temporaltls"
)

// dialTemporal connects to the Temporal frontend with the configured
// namespace, TLS, metrics, payload codec and interceptors (tracing); the
// workers built on the client inherit its interceptors.
func dialTemporal(cfg config, logger *slog.Logger, metrics client.MetricsHandler, interceptors []interceptor.ClientInterceptor) (client.Client, error) {
	tlsCfg, err := temporaltls.Config{
		CAFile: cfg.TemporalTLSCA, CertFile: cfg.TemporalTLSCert, KeyFile: cfg.TemporalTLSKey, ServerName: cfg.TemporalTLSServer,
	}.Client(cfg.TemporalAddress)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(client.Options{
		HostPort:       cfg.TemporalAddress,
		Namespace:      cfg.TemporalNamespace,
		Logger:         tlog.NewStructuredLogger(logger.With("component", "temporal")),
		MetricsHandler: metrics,
		// The keepalive bounds how long a half-open connection to the
		// frontend goes unnoticed: KeepAliveTime + KeepAliveTimeout.
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg, KeepAliveTime: cfg.TemporalKeepAlive, KeepAliveTimeout: cfg.TemporalKeepAlive / 2},
		DataConverter:     cfg.Codec.DataConverter(),
		FailureConverter:  cfg.Codec.FailureConverter(),
		Interceptors:      interceptors,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.TemporalAddress, cfg.TemporalNamespace, err)
	}
	return c, nil
}

// workerOptions are the options of the workflows part's Temporal worker.
func workerOptions(cfg config, interceptors []interceptor.WorkerInterceptor) worker.Options {
	return worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.MaxConcurrentWorkflows,
		WorkflowTaskPollerBehavior:             workflowTaskPollers(cfg.Pollers),
		MaxConcurrentActivityTaskPollers:       cfg.Pollers,
		WorkerStopTimeout:                      cfg.ShutdownGrace,
		Interceptors:                           interceptors,
		DeploymentOptions:                      deploymentOptions(cfg.Versioning),
	}
}

// workflowTaskPollers is how the worker polls for workflow tasks: with
// poller autoscaling, which keeps pollers of its own on the task queue and
// on the worker's sticky queue, from 1 up to n on each. A fixed number of
// pollers (MaxConcurrentWorkflowTaskPollers) is one pool that sends every
// poll to the sticky queue while the server reports a backlog there, which
// under a steady load is always: the first task of a new workflow, which
// only the task queue holds, then waits behind every later task of the
// workflows already running (over a minute for an order at 100 in flight
// on a server whose transfer queue is read 1,000 times a second, the
// setting of `make demo`; docs/BENCHMARKS.md has the tail check).
func workflowTaskPollers(n int) worker.PollerBehavior {
	return worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
		InitialNumberOfPollers: n, MinimumNumberOfPollers: 1, MaximumNumberOfPollers: n,
	})
}

// deploymentOptions opt the worker into Worker Versioning as the version
// v, with every saga pinned to the version it started on: a saga's
// history replays only on the code that wrote it, so a deploy never has to
// keep old command sequences working for sagas in flight. Unversioned (the
// zero options) when v is off.
func deploymentOptions(v versioning) worker.DeploymentOptions {
	if !v.Enabled() {
		return worker.DeploymentOptions{}
	}
	return worker.DeploymentOptions{
		UseVersioning:             true,
		Version:                   worker.WorkerDeploymentVersion{DeploymentName: v.DeploymentName, BuildID: v.BuildID},
		DefaultVersioningBehavior: workflow.VersioningBehaviorPinned,
	}
}

// versionRegistrationTimeout bounds how long a versioned worker waits for
// the server to list its version: a server without Worker Deployments
// enabled never does.
const versionRegistrationTimeout = time.Minute

// registerVersion waits until the deployment lists the worker's version,
// which the server adds when the worker's pollers first reach it, with
// both the workflow and the activity task queue (set-current-version
// refuses a version missing a task queue of the current one), and,
// when v.MakeCurrentIfUnset and the deployment has no current version
// yet, makes the version current. A current version is never replaced:
// moving new sagas to another build is the operator's decision
// (set-current-version). It reports whether the version is current.
func registerVersion(ctx context.Context, c client.Client, taskQueue string, v versioning, logger *slog.Logger) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, versionRegistrationTimeout)
	defer cancel()
	h := c.WorkerDeploymentClient().GetHandle(v.DeploymentName)
	want := worker.WorkerDeploymentVersion{DeploymentName: v.DeploymentName, BuildID: v.BuildID}
	var last error
	for {
		d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		if err == nil {
			listed := slices.ContainsFunc(d.Info.VersionSummaries, func(s client.WorkerDeploymentVersionSummary) bool { return s.Version == want })
			current := d.Info.RoutingConfig.CurrentVersion
			if listed {
				err = pollsBoth(ctx, h, taskQueue, v)
			}
			switch {
			case !listed:
				err = fmt.Errorf("version %s not listed yet", v)
			case err != nil:
			case current != nil:
				return *current == want, nil
			case !v.MakeCurrentIfUnset:
				return false, nil
			default:
				_, err = h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: v.BuildID, ConflictToken: d.ConflictToken})
				if err == nil {
					logger.Info("made this build the deployment's current version: it had none", "deployment", v.DeploymentName, "build_id", v.BuildID)
					return true, nil
				}
				// Another worker changed the deployment since Describe
				// (a conflict): describe again.
			}
		}
		last = err
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return false, ctx.Err()
			}
			return false, fmt.Errorf("Worker Deployment %s: version %s not registered within %s: %v "+
				"(does the server enable Worker Deployments? dynamic config system.enableDeploymentVersions=true)",
				v.DeploymentName, v, versionRegistrationTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pollsBoth reports an error until the version lists the task queue both
// as a workflow and as an activity task queue.
func pollsBoth(ctx context.Context, h client.WorkerDeploymentHandle, taskQueue string, v versioning) error {
	d, err := h.DescribeVersion(ctx, client.WorkerDeploymentDescribeVersionOptions{BuildID: v.BuildID})
	if err != nil {
		return err
	}
	for _, typ := range []client.TaskQueueType{client.TaskQueueTypeWorkflow, client.TaskQueueTypeActivity} {
		if !slices.Contains(d.Info.TaskQueuesInfos, client.WorkerDeploymentTaskQueueInfo{Name: taskQueue, Type: typ}) {
			return fmt.Errorf("version %s does not list task queue %s (type %v) yet", v, taskQueue, typ)
		}
	}
	return nil
}
