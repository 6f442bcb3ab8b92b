package audit

import (
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
)

// The API's enums print in CamelCase; the audit trail shows their words.
func TestEnumWords(t *testing.T) {
	require.Equal(t, "workflow already exists", EnumWords(
		enumspb.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS.String(), "START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_"))
	require.Equal(t, "external workflow execution not found", EnumWords(
		enumspb.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND.String(), "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_"))
	require.Equal(t, "namespace not found", EnumWords("SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND", "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_"))
}
