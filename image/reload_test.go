package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// A reload replaces the registry configuration for the pulls that start after it; a pull in flight finishes with
// the configuration it started with, and a reload that fails to load changes nothing. Pinned images follow too.
func TestReload(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "test/app:1", randomImage(t, 1))
	reg.push(t, "test/app:2", randomImage(t, 1))
	// gated forwards to reg, holding the first blob GET until the test opens the gate.
	gate, hit := make(chan struct{}), make(chan struct{})
	var once sync.Once
	target, _ := url.Parse(reg.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	gated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			once.Do(func() { close(hit) })
			<-gate
		}
		proxy.ServeHTTP(w, r)
	}))
	defer gated.Close()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	mirrorTo := func(m string) config.RegistryConfig {
		return config.RegistryConfig{MaxConcurrentDownloads: 3, PullProgressTimeout: config.Duration{Duration: 60e9},
			Hosts: map[string]config.RegistryHost{"registry.invalid": {Mirrors: []string{m}, MirrorsOnly: true}}}
	}
	s := newService(t, t.TempDir(), mirrorTo(gated.URL))
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := s.Pull(ctx, "registry.invalid/test/app:1", nil)
		done <- err
	}()
	<-hit

	before := s.Registry()
	bad := mirrorTo("http://" + deadAddress(t))
	certs := t.TempDir()
	os.MkdirAll(filepath.Join(certs, "other.example"), 0o755)
	os.WriteFile(filepath.Join(certs, "other.example", "hosts.toml"), []byte("capabilities = [\"fetch\"]\n"), 0o644)
	bad.ConfigPath = certs
	if err := s.Reload(bad, nil); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "hosts.toml") {
		t.Fatalf("Reload of a broken certs.d = %v, want InvalidArgument naming the file", err)
	}
	if s.Registry() != before {
		t.Fatal("a refused reload replaced the registry client")
	}
	pinned := reg.host + "/test/app:2"
	if err := s.Reload(mirrorTo("http://"+deadAddress(t)), []string{pinned}); err != nil {
		t.Fatal(err)
	}
	if s.Registry() == before {
		t.Fatal("the reload kept the old registry client")
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("the pull in flight did not keep its configuration: %v", err)
	}
	if _, err := s.Pull(ctx, "registry.invalid/test/app:2", nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("a pull after the reload = %v, want Unavailable from the dead mirror it now names", err)
	}
	img, err := s.Pull(ctx, pinned, nil)
	if err != nil || !img.Pinned {
		t.Errorf("Pull(%s) = %+v, %v; want it pinned by the reload", pinned, img, err)
	}
}
