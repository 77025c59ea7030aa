package cri

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestToStatus(t *testing.T) {
	cases := []struct {
		err  error
		want codes.Code
	}{
		{errdefs.NotFound("container", "abc"), codes.NotFound},
		{fmt.Errorf("create pod: %w", errdefs.AlreadyExists("pod", "p")), codes.AlreadyExists},
		{errdefs.InvalidArgument("config.metadata.name", "empty"), codes.InvalidArgument},
		{errdefs.FailedPrecondition("container %s is not running", "c"), codes.FailedPrecondition},
		{fmt.Errorf("pull: %w", errdefs.ErrUnauthenticated), codes.Unauthenticated},
		{fmt.Errorf("monitor: %w", errdefs.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("pull: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{status.Error(codes.Aborted, "x"), codes.Aborted},
		{errors.New("boom"), codes.Unknown},
	}
	for _, tc := range cases {
		got := status.Code(toStatus(tc.err))
		if got != tc.want {
			t.Errorf("toStatus(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
	if msg := status.Convert(toStatus(errdefs.InvalidArgument("image.image", "empty"))).Message(); msg != "image.image: empty: invalid argument" {
		t.Errorf("message = %q", msg)
	}
}
