package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berthcri/berth/internal/errdefs"
)

// classify gives a registry exchange error the registry's meaning: 401/403 → authentication failed for host,
// 404 → what was not found, 429 → resource exhausted, TLS failures name the host, anything else about the
// exchange is Unavailable. Context errors and errors already carrying a sentinel pass unchanged.
func classify(err error, host, what string) error {
	var (
		terr     *transport.Error
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		netErr   net.Error
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), hasSentinel(err):
		return err
	case errors.As(err, &terr):
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("authentication failed for %s: %v: %w", host, err, errdefs.ErrUnauthenticated)
		case http.StatusNotFound:
			return fmt.Errorf("%s not found on %s: %w", what, host, errdefs.ErrNotFound)
		case http.StatusTooManyRequests:
			return fmt.Errorf("registry %s: too many requests: %v: %w", host, err, errdefs.ErrResourceExhausted)
		}
		return fmt.Errorf("registry %s: %v: %w", host, err, errdefs.ErrUnavailable)
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify),
		errors.As(err, &record), errors.As(err, &alert):
		return fmt.Errorf("tls connection to registry %s: %v: %w", host, err, errdefs.ErrUnavailable)
	case errors.As(err, &netErr):
		return fmt.Errorf("registry %s unreachable: %v: %w", host, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("registry %s: %v: %w", host, err, errdefs.ErrUnavailable)
}

func hasSentinel(err error) bool {
	for _, s := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrUnavailable, errdefs.ErrUnauthenticated, errdefs.ErrResourceExhausted} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
