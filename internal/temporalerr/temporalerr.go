// Package temporalerr classifies the errors of Temporal client calls for
// the consumers that hand a message to Temporal (the reply consumer, the
// bridge): an error of the server being away is retried for as long as the
// outage lasts, never dead-lettered.
package temporalerr

import (
	"context"
	"errors"

	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Unavailable reports whether err says the Temporal frontend could not be
// reached or did not answer in time (a server restarting, a connection
// cut): the same call succeeds once the server is back, whatever the
// message. The SDK's own retries of such calls have given up by then.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var code codes.Code
	var se serviceerror.ServiceError
	if errors.As(err, &se) {
		code = se.Status().Code()
	} else if st, ok := status.FromError(err); ok {
		// A transport error the SDK passed on as it came.
		code = st.Code()
	} else {
		return false
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}
