// Package workflows holds the sagas as deterministic Temporal workflows and
// the Saga type they share. Nothing here does I/O, reads the clock, starts
// goroutines or ranges over maps to produce commands: that is the activities'
// job, and replaying a workflow's history must reproduce its decisions.
package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/contract"
)

func invalidInput(err error) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("invalid transfer: %v", err), contract.ErrTypeInvalidTransfer, err)
}
