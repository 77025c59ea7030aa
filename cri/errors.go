package cri

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthcri/berth/internal/errdefs"
)

// toStatus is the one place where berth's errors become gRPC codes. Errors that already carry a gRPC status
// (from a library speaking gRPC) keep it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, errdefs.ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, errdefs.ErrResourceExhausted):
		return codes.ResourceExhausted
	case errors.Is(err, errdefs.ErrInternal):
		return codes.Internal
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}
