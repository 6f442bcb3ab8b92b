package contract_test

import (
	"go/build"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// idPolicies are the policies every saga starts with: one run per id, ever,
// and a second start reported as an error naming the existing run.
func idPolicies(id, queue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                queue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
}

func TestStartOptions(t *testing.T) {
	order := events.OrderPlaced{OrderID: "o-1", CustomerID: "cust", MerchantID: "shop", Total: 2500, Currency: "EUR"}
	orderWant := idPolicies("order-o-1", contract.TaskQueue)
	orderWant.Memo = map[string]any{contract.MemoOrderTotal: events.Money{Amount: 2500, Currency: "EUR"}}
	orderWant.TypedSearchAttributes = temporal.NewSearchAttributes(
		contract.OrderIDKey.ValueSet("o-1"), contract.CustomerIDKey.ValueSet("cust"))

	tests := []struct {
		name string
		got  client.StartWorkflowOptions
		want client.StartWorkflowOptions
	}{
		{"transfer", contract.TransferStartOptions("t-9", ""), idPolicies("transfer-t-9", "sagas")},
		{"transfer on a queue", contract.TransferStartOptions("t-9", "q"), idPolicies("transfer-t-9", "q")},
		{"reservation", contract.ReservationStartOptions("r-1", ""), idPolicies("reservation-r-1", "sagas")},
		{"order", contract.OrderStartOptions(order, ""), orderWant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.got)
		})
	}
	require.Equal(t, "q", contract.OrderStartOptions(order, "q").TaskQueue)
}

func TestWorkflowIDs(t *testing.T) {
	require.Equal(t, "transfer-t", contract.TransferWorkflowID("t"))
	require.Equal(t, "reservation-r", contract.ReservationWorkflowID("r"))
	require.Equal(t, "order-o", contract.OrderWorkflowID("o"))
	require.Equal(t, "order-o", contract.OrderTransferID("o"))
	require.Equal(t, "order-o-refund", contract.OrderRefundTransferID("o", 1))
	require.Equal(t, "order-o-refund-3", contract.OrderRefundTransferID("o", 3))
}

func TestSearchAttributes(t *testing.T) {
	require.Equal(t, []string{"SagaStatus=Keyword", "OrderId=Keyword", "CustomerId=Keyword"}, contract.SearchAttributes())
}

// TestImportsOnlyEventsAndTheSDKsPureParts keeps the contract importable by
// every process: no workflow code, no worker, no transport, no database.
func TestImportsOnlyEventsAndTheSDKsPureParts(t *testing.T) {
	pkg, err := build.Default.ImportDir(".", 0)
	require.NoError(t, err)
	allowed := []string{
		"github.com/sagaflow/sagaflow/events",
		"go.temporal.io/api/enums/v1",
		"go.temporal.io/sdk/client",
		"go.temporal.io/sdk/temporal",
	}
	for _, imp := range pkg.Imports {
		if !strings.Contains(strings.Split(imp, "/")[0], ".") {
			continue // the standard library
		}
		require.Contains(t, allowed, imp, "contract imports %s", imp)
	}
}
