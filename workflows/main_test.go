package workflows

import (
	"testing"

	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// TestMain shares one Temporal dev server among the integration tests of the
// package; unit tests never start it.
func TestMain(m *testing.M) { temporaltest.Main(m) }
