package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestClassify(t *testing.T) {
	const host, what = "reg.example:5000", "reg.example:5000/app:v1"
	dialErr := &url.Error{Op: "Get", URL: "https://reg.example:5000/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tlsErr := &url.Error{Op: "Get", URL: "https://reg.example:5000/v2/", Err: x509.UnknownAuthorityError{}}
	for name, tc := range map[string]struct {
		err     error
		want    error
		message string
	}{
		"401":                {err: &transport.Error{StatusCode: 401}, want: errdefs.ErrUnauthenticated, message: "authentication failed for " + host},
		"403":                {err: &transport.Error{StatusCode: 403}, want: errdefs.ErrUnauthenticated, message: "authentication failed for " + host},
		"404":                {err: &transport.Error{StatusCode: 404}, want: errdefs.ErrNotFound, message: what + " not found"},
		"429":                {err: &transport.Error{StatusCode: 429}, want: errdefs.ErrResourceExhausted, message: host},
		"500":                {err: &transport.Error{StatusCode: 500}, want: errdefs.ErrUnavailable, message: host},
		"tls names the host": {err: tlsErr, want: errdefs.ErrUnavailable, message: "tls connection to registry " + host},
		"connection refused": {err: dialErr, want: errdefs.ErrUnavailable, message: host + " unreachable"},
		"deadline passes":    {err: fmt.Errorf("get: %w", context.DeadlineExceeded), want: context.DeadlineExceeded},
		"sentinel passes":    {err: errdefs.NotFound("x", "y"), want: errdefs.ErrNotFound, message: `x "y"`},
	} {
		t.Run(name, func(t *testing.T) {
			got := classify(tc.err, host, what)
			if !errors.Is(got, tc.want) {
				t.Fatalf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if !strings.Contains(got.Error(), tc.message) {
				t.Errorf("message %q does not contain %q", got, tc.message)
			}
		})
	}
}
