package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// serve starts a registry on dir as main does.
func serve(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	h, err := newDiskBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newManifestStore(dir, h, registry.New(registry.Logger(discardLogger()), registry.WithBlobHandler(h)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func ref(t *testing.T, srv *httptest.Server, repoTag string) name.Tag {
	t.Helper()
	r, err := name.NewTag(strings.TrimPrefix(srv.URL, "http://") + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestManifestsSurviveRestartAndCopy(t *testing.T) {
	dir := t.TempDir()
	srv := serve(t, dir)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, "a/b:one"), img); err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(ref(t, srv, "a/b:two"), img); err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(ref(t, srv, "a/b:gone"), img); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v2/a/b/manifests/gone", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete tag: status %d", resp.StatusCode)
	}
	srv.Close()

	// A copy of the dir, as hack/vm carries it into a VM.
	copied := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	want, _ := img.Digest()
	for _, d := range []string{dir, copied} {
		srv := serve(t, d)
		for _, tag := range []string{"one", "two"} {
			got, err := remote.Image(ref(t, srv, "a/b:"+tag))
			if err != nil {
				t.Fatalf("%s: pull %s after restart: %v", d, tag, err)
			}
			if gd, _ := got.Digest(); gd != want {
				t.Errorf("%s: %s is %s, pushed %s", d, tag, gd, want)
			}
			if _, err := got.Layers(); err != nil {
				t.Error(err)
			}
		}
		if _, err := remote.Head(ref(t, srv, "a/b:gone")); err == nil {
			t.Errorf("%s: deleted tag is back after restart", d)
		}
	}
}

func TestManifestIndexCorruptRefusesStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, indexFile), []byte(`[{"repo":"a","ref":"x","mediaType":"m","digest":"sha256:`+strings.Repeat("0", 64)+`"}]`), 0o644)
	h, _ := newDiskBlobs(dir)
	if _, err := newManifestStore(dir, h, registry.New(registry.Logger(discardLogger()), registry.WithBlobHandler(h))); err == nil {
		t.Fatal("started with an index naming a missing manifest body")
	}
}

func TestManifestPath(t *testing.T) {
	tests := map[string]struct {
		path, repo, ref string
		ok              bool
	}{
		"tag":       {"/v2/e2e-test-images/busybox/manifests/1.29-2", "e2e-test-images/busybox", "1.29-2", true},
		"digest":    {"/v2/pause/manifests/sha256:abc", "pause", "sha256:abc", true},
		"blob":      {"/v2/pause/blobs/sha256:abc", "", "", false},
		"no repo":   {"/v2/manifests/x", "", "", false},
		"not v2":    {"/v1/a/manifests/x", "", "", false},
		"empty ref": {"/v2/a/manifests/", "a", "", false},
	}
	for n, tc := range tests {
		t.Run(n, func(t *testing.T) {
			repo, ref, ok := manifestPath(tc.path)
			if ok != tc.ok || (ok && (repo != tc.repo || ref != tc.ref)) {
				t.Errorf("manifestPath(%q) = %q, %q, %v", tc.path, repo, ref, ok)
			}
		})
	}
}
