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
	// ErrInternal marks a bug caught at run time (a recovered panic), never a caller's mistake.
	ErrInternal = errors.New("internal error")
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
func IsInternal(err error) bool           { return errors.Is(err, ErrInternal) }

// kinds name the sentinels for errors that cross a process boundary (the monitor's protocol, helper results).
var kinds = []struct {
	kind string
	err  error
}{
	{"not_found", ErrNotFound},
	{"already_exists", ErrAlreadyExists},
	{"invalid_argument", ErrInvalidArgument},
	{"failed_precondition", ErrFailedPrecondition},
	{"unavailable", ErrUnavailable},
	{"resource_exhausted", ErrResourceExhausted},
	{"internal", ErrInternal},
}

// Kind names the sentinel err wraps, "" for none; FromKind rebuilds the error on the other side.
func Kind(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return ""
}

// FromKind is an error with message msg that wraps the sentinel Kind named kind.
func FromKind(msg, kind string) error {
	for _, k := range kinds {
		if k.kind == kind {
			return &kindError{msg: msg, sentinel: k.err}
		}
	}
	return errors.New(msg)
}

type kindError struct {
	msg      string
	sentinel error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.sentinel }
