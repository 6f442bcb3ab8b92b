package events_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

// The publisher and the consumers share the catalog across goroutines; the
// race detector checks that reading it while encoding and decoding is safe.
func TestConcurrentEncodeAndDecode(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				env, err := events.New(events.CmdInventoryRestock, "test", events.InventoryRestock{SKU: "s", Quantity: int64(g*100 + i + 1)})
				if err != nil {
					errs <- err
					return
				}
				b, err := env.Encode()
				if err != nil {
					errs <- err
					return
				}
				if _, _, err := events.DecodeAs[events.InventoryRestock](b); err != nil {
					errs <- err
					return
				}
				_ = events.Types()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestReplyAccepted(t *testing.T) {
	require.True(t, events.Reply{Status: events.ReplyAccepted}.Accepted())
	require.False(t, events.Reply{Status: events.ReplyRejected}.Accepted())
}

func TestFieldErrorWithoutField(t *testing.T) {
	require.Equal(t, "broken", (&events.FieldError{Problem: "broken"}).Error())
	require.Nil(t, events.FieldErrors(nil))
}
