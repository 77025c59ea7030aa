package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestParseRef(t *testing.T) {
	const dgst = "sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
	for _, tc := range []struct {
		in, want string
	}{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest"},
		{"index.docker.io/library/busybox", "docker.io/library/busybox:latest"},
		{"user/app:v1", "docker.io/user/app:v1"},
		{"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
		{"quay.io/org/app", "quay.io/org/app:latest"},
		{"127.0.0.1:5000/e2e/busybox", "127.0.0.1:5000/e2e/busybox:latest"},
		{"localhost/app", "localhost/app:latest"},
		{"localhost:5000/app:1", "localhost:5000/app:1"},
		{"busybox@" + dgst, "docker.io/library/busybox@" + dgst},
		{"busybox:1.36@" + dgst, "docker.io/library/busybox@" + dgst},
	} {
		got, err := parseRef(tc.in)
		if err != nil {
			t.Errorf("parseRef(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("parseRef(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{
		"",
		"Busybox",
		"busybox:",
		"busybox@sha256:abc",
		"busybox@sha256:" + strings.Repeat("x", 64),
		strings.Repeat("a", 64),
		"foo bar",
		"http://registry.example/app",
		"registry.example/app:" + strings.Repeat("t", 129),
	} {
		_, err := parseRef(in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("parseRef(%q) = %v, want invalid argument", in, err)
			continue
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("parseRef(%q): message %q does not name the reference", in, err)
		}
	}
}

// FuzzParseRef checks that parsing never panics, rejects only with InvalidArgument, and that a normalised
// reference parses back to itself.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"busybox", "registry.k8s.io/pause:3.9", "localhost:5000/a/b:c",
		"busybox:1@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa", "[::1]:5000/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		named, err := parseRef(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("parseRef(%q) = %v, want an invalid argument", s, err)
			}
			return
		}
		again, err := parseRef(named.String())
		if err != nil || again.String() != named.String() {
			t.Fatalf("parseRef(%q) = %q, which parses to %v, %v", s, named, again, err)
		}
	})
}
