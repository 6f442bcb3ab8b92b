package temporalerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"server unreachable", serviceerror.NewUnavailable("connection refused"), true},
		{"wrapped", fmt.Errorf("complete activity: %w", serviceerror.NewUnavailable("connection refused")), true},
		{"raw transport status", status.Error(codes.Unavailable, "transport is closing"), true},
		{"deadline of the call", serviceerror.NewDeadlineExceeded("timeout"), true},
		{"deadline of the context", fmt.Errorf("dial: %w", context.DeadlineExceeded), true},
		{"server overloaded", serviceerror.NewResourceExhausted(0, "busy"), true},
		{"the activity no longer waits", serviceerror.NewNotFound("activity not found"), false},
		{"a refused argument", serviceerror.NewInvalidArgument("bad"), false},
		{"an error of its own", errors.New("encode result"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Unavailable(tt.err))
		})
	}
}
