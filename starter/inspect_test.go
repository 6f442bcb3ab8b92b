package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/audit"
)

func TestStatusShowsTheBuildASagaRunsOn(t *testing.T) {
	cases := []struct {
		name    string
		version *audit.Version
		want    string
	}{
		{"unversioned", nil, "  build:   unversioned\n"},
		{"pinned", &audit.Version{DeploymentName: "sagaflow", BuildID: "b1", Behavior: "Pinned"}, "  build:   sagaflow:b1 (Pinned)\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			a := &app{out: &out}
			a.printStatus(statusView{WorkflowID: "transfer-t1", WorkflowType: "TransferWorkflow", Status: "Running", Version: tc.version, QueryError: "no worker"})
			require.Contains(t, out.String(), tc.want)
		})
	}
}
