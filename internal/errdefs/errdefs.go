// Package errdefs holds the few sentinel errors that inner packages wrap.
// Exactly one place (the CRI interceptor) maps them to gRPC codes.
package errdefs

import (
	"errors"
	"fmt"
)

var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrResourceExhausted  = errors.New("resource exhausted")
)

// InvalidArgument returns an error wrapping ErrInvalidArgument whose message names the field.
func InvalidArgument(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidArgument)
}

// NotFound returns an error wrapping ErrNotFound, e.g. NotFound("container", id).
func NotFound(kind, id string) error {
	return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
}

// AlreadyExists returns an error wrapping ErrAlreadyExists.
func AlreadyExists(kind, id string) error {
	return fmt.Errorf("%s %q: %w", kind, id, ErrAlreadyExists)
}

// FailedPrecondition returns an error wrapping ErrFailedPrecondition.
func FailedPrecondition(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrFailedPrecondition)
}

func IsNotFound(err error) bool           { return errors.Is(err, ErrNotFound) }
func IsAlreadyExists(err error) bool      { return errors.Is(err, ErrAlreadyExists) }
func IsInvalidArgument(err error) bool    { return errors.Is(err, ErrInvalidArgument) }
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }
func IsUnavailable(err error) bool        { return errors.Is(err, ErrUnavailable) }
