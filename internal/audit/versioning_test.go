package audit

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	deploymentpb "go.temporal.io/api/deployment/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// taskCompleted is a WorkflowTaskCompleted event of a worker polling as
// deployment:build (unversioned when build is empty).
func taskCompleted(id int64, deployment, build string, behavior enumspb.VersioningBehavior) *historypb.HistoryEvent {
	a := &historypb.WorkflowTaskCompletedEventAttributes{VersioningBehavior: behavior}
	if build != "" {
		a.DeploymentVersion = &deploymentpb.WorkerDeploymentVersion{DeploymentName: deployment, BuildId: build}
	}
	return &historypb.HistoryEvent{EventId: id, EventType: enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
		Attributes: &historypb.HistoryEvent_WorkflowTaskCompletedEventAttributes{WorkflowTaskCompletedEventAttributes: a}}
}

func describedOn(deployment, build string, behavior enumspb.VersioningBehavior) *workflowservice.DescribeWorkflowExecutionResponse {
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		VersioningInfo: &workflowpb.WorkflowExecutionVersioningInfo{
			Behavior:          behavior,
			DeploymentVersion: &deploymentpb.WorkerDeploymentVersion{DeploymentName: deployment, BuildId: build},
		},
	}}
}

func TestTimelineShowsTheBuildAPinnedSagaRanOn(t *testing.T) {
	pinned := enumspb.VERSIONING_BEHAVIOR_PINNED
	evs := append(loadHistory(t, "transfer_completed"), taskCompleted(100, "sagaflow", "b1", pinned), taskCompleted(104, "sagaflow", "b1", pinned))
	tl := Build(evs, describedOn("sagaflow", "b1", pinned), Options{})
	require.Equal(t, &Version{DeploymentName: "sagaflow", BuildID: "b1", Behavior: "Pinned"}, tl.Version)
	require.Equal(t, []Version{{DeploymentName: "sagaflow", BuildID: "b1", Behavior: "Pinned", FirstEventID: 100, LastEventID: 104, WorkflowTasks: 2}}, tl.Versions)

	var out bytes.Buffer
	require.NoError(t, WriteText(&out, tl, TextOptions{}))
	require.Contains(t, out.String(), "  build:   sagaflow:b1 (Pinned)\n")
}

func TestTimelineShowsEveryBuildAWorkflowMovedBetween(t *testing.T) {
	auto := enumspb.VERSIONING_BEHAVIOR_AUTO_UPGRADE
	tl := Build([]*historypb.HistoryEvent{
		taskCompleted(3, "sagaflow", "b1", auto), taskCompleted(9, "sagaflow", "b1", auto), taskCompleted(15, "sagaflow", "b2", auto),
	}, nil, Options{})
	require.Nil(t, tl.Version, "no describe response")
	require.Equal(t, []Version{
		{DeploymentName: "sagaflow", BuildID: "b1", Behavior: "AutoUpgrade", FirstEventID: 3, LastEventID: 9, WorkflowTasks: 2},
		{DeploymentName: "sagaflow", BuildID: "b2", Behavior: "AutoUpgrade", FirstEventID: 15, LastEventID: 15, WorkflowTasks: 1},
	}, tl.Versions)
	var out bytes.Buffer
	require.NoError(t, WriteText(&out, tl, TextOptions{}))
	require.Contains(t, out.String(), "  build:   sagaflow:b1 (AutoUpgrade), events 3-9; then sagaflow:b2 (AutoUpgrade), events 15-15\n")
}

func TestTimelineOfAnUnversionedSagaShowsNoBuild(t *testing.T) {
	evs := append(loadHistory(t, "transfer_completed"), taskCompleted(100, "", "", enumspb.VERSIONING_BEHAVIOR_UNSPECIFIED))
	tl := Build(evs, &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{}}, Options{})
	require.Nil(t, tl.Version)
	require.Empty(t, tl.Versions)
	var out bytes.Buffer
	require.NoError(t, WriteText(&out, tl, TextOptions{}))
	require.NotContains(t, out.String(), "build:")
}

func TestDescribedVersion(t *testing.T) {
	require.Nil(t, DescribedVersion(&workflowpb.WorkflowExecutionInfo{}), "unversioned")
	require.Equal(t, &Version{DeploymentName: "sagaflow", BuildID: "b1", Behavior: "Pinned"},
		DescribedVersion(describedOn("sagaflow", "b1", enumspb.VERSIONING_BEHAVIOR_PINNED).GetWorkflowExecutionInfo()))
	older := &workflowpb.WorkflowExecutionInfo{VersioningInfo: &workflowpb.WorkflowExecutionVersioningInfo{
		Behavior: enumspb.VERSIONING_BEHAVIOR_PINNED, Version: "sagaflow.b0"}}
	require.Equal(t, &Version{DeploymentName: "sagaflow", BuildID: "b0", Behavior: "Pinned"}, DescribedVersion(older), "the string form of older servers")
	moved := describedOn("sagaflow", "b1", enumspb.VERSIONING_BEHAVIOR_PINNED).GetWorkflowExecutionInfo()
	moved.VersioningInfo.VersioningOverride = &workflowpb.VersioningOverride{Override: &workflowpb.VersioningOverride_Pinned{
		Pinned: &workflowpb.VersioningOverride_PinnedOverride{Version: &deploymentpb.WorkerDeploymentVersion{DeploymentName: "sagaflow", BuildId: "b2"}}}}
	require.Equal(t, &Version{DeploymentName: "sagaflow", BuildID: "b2", Behavior: "Pinned"}, DescribedVersion(moved), "an operator's override wins")
}
