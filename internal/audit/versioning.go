package audit

import (
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
)

// Version is a Worker Deployment version (Temporal Worker Versioning) that
// ran workflow tasks of a saga: the build a saga ran on.
type Version struct {
	// DeploymentName is the worker's --deployment-name.
	DeploymentName string `json:"deployment_name"`
	// BuildID is the worker's --build-id.
	BuildID string `json:"build_id"`
	// Behavior is the versioning behavior the worker ran the workflow with:
	// Pinned (it stays on this build) or AutoUpgrade.
	Behavior string `json:"behavior,omitempty"`
	// FirstEventID and LastEventID are the first and the last workflow
	// task completed on this build (history versions only).
	FirstEventID int64 `json:"first_event_id,omitempty"`
	LastEventID  int64 `json:"last_event_id,omitempty"`
	// WorkflowTasks counts the workflow tasks completed on this build
	// (history versions only).
	WorkflowTasks int `json:"workflow_tasks,omitempty"`
}

// String is "deployment:build-id", as the Temporal CLI names a version.
func (b Version) String() string { return b.DeploymentName + ":" + b.BuildID }

// DescribedVersion is the version a workflow is on according to Temporal
// (DescribeWorkflowExecution's versioning info): for a pinned saga, the
// build it started on and finishes on. Nil for an unversioned workflow.
func DescribedVersion(info *workflowpb.WorkflowExecutionInfo) *Version {
	vi := info.GetVersioningInfo()
	if vi == nil {
		return nil
	}
	b := &Version{Behavior: versioningBehavior(vi.GetBehavior())}
	switch {
	case vi.GetDeploymentVersion().GetBuildId() != "":
		b.DeploymentName, b.BuildID = vi.GetDeploymentVersion().GetDeploymentName(), vi.GetDeploymentVersion().GetBuildId()
	case vi.GetVersion() != "": // the deprecated field of older servers
		b.DeploymentName, b.BuildID = splitVersion(vi.GetVersion())
	case vi.GetDeployment().GetBuildId() != "": // the deprecated field of older servers
		b.DeploymentName, b.BuildID = vi.GetDeployment().GetSeriesName(), vi.GetDeployment().GetBuildId()
	default:
		return nil
	}
	// An operator's override (`temporal workflow update-options`) decides
	// where the workflow runs now.
	if o := vi.GetVersioningOverride(); o != nil {
		if v := o.GetPinned().GetVersion(); v.GetBuildId() != "" {
			b.DeploymentName, b.BuildID, b.Behavior = v.GetDeploymentName(), v.GetBuildId(), "Pinned"
		} else if o.GetAutoUpgrade() {
			b.Behavior = "AutoUpgrade"
		}
	}
	return b
}

// taskVersion is the version a completed workflow task ran on, nil for an
// unversioned worker.
func taskVersion(a *historypb.WorkflowTaskCompletedEventAttributes) *Version {
	b := &Version{Behavior: versioningBehavior(a.GetVersioningBehavior())}
	switch {
	case a.GetDeploymentVersion().GetBuildId() != "":
		b.DeploymentName, b.BuildID = a.GetDeploymentVersion().GetDeploymentName(), a.GetDeploymentVersion().GetBuildId()
	case a.GetWorkerDeploymentVersion() != "": // the deprecated field of older servers
		b.DeploymentName, b.BuildID = splitVersion(a.GetWorkerDeploymentVersion())
	case a.GetDeployment().GetBuildId() != "": // the deprecated field of older servers
		b.DeploymentName, b.BuildID = a.GetDeployment().GetSeriesName(), a.GetDeployment().GetBuildId()
	default:
		return nil
	}
	return b
}

// taskCompleted records the build of a completed workflow task: a new
// entry when the build differs from the previous task's.
func (b *builder) taskCompleted(id int64, a *historypb.WorkflowTaskCompletedEventAttributes) {
	tb := taskVersion(a)
	if tb == nil {
		return
	}
	if n := len(b.tl.Versions); n > 0 {
		last := &b.tl.Versions[n-1]
		if last.DeploymentName == tb.DeploymentName && last.BuildID == tb.BuildID && last.Behavior == tb.Behavior {
			last.LastEventID = id
			last.WorkflowTasks++
			return
		}
	}
	tb.FirstEventID, tb.LastEventID, tb.WorkflowTasks = id, id, 1
	b.tl.Versions = append(b.tl.Versions, *tb)
}

// splitVersion splits the string form "deployment.build-id" of a version;
// a deployment name cannot hold a dot.
func splitVersion(v string) (deployment, buildID string) {
	if d, id, ok := strings.Cut(v, "."); ok {
		return d, id
	}
	return "", v
}

func versioningBehavior(v enumspb.VersioningBehavior) string {
	if v == enumspb.VERSIONING_BEHAVIOR_UNSPECIFIED {
		return ""
	}
	return enumName(v.String(), "VERSIONING_BEHAVIOR_")
}
