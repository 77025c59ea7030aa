//go:build integration

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pinned images (pinned_images and the sandbox image) survive RemoveImage, which answers FailedPrecondition.
func TestRemoveImagePinned(t *testing.T) {
	needImages(t)
	d := newDaemon(t, "")
	os.MkdirAll(filepath.Join(d.dir, "berth.d"), 0o755)
	if err := os.WriteFile(filepath.Join(d.dir, "berth.d", "20-pinned.toml"), []byte(fmt.Sprintf("pinned_images = [%q]\n", testImage)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	_, img := d.clients(t)
	for _, ref := range []string{testImage, "registry.k8s.io/pause:3.10.1"} {
		if _, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatal(err)
		}
		_, err := img.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "pinned") {
			t.Errorf("RemoveImage(%s) = %v, want FailedPrecondition: pinned", ref, err)
		}
		st, err := img.ImageStatus(ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil || st.Image == nil || !st.Image.Pinned {
			t.Errorf("ImageStatus(%s) after RemoveImage = %v, %v; want the pinned image", ref, st, err)
		}
	}
}

// Hostile registries cannot make berthd buffer what they send: a manifest streamed without end is cut off at
// registry.max_manifest_size (ResourceExhausted), an image of more layers than overlayfs stacks is refused at pull
// (FailedPrecondition), and berthd's peak memory stays far below what was sent.
func TestPullHostileImages(t *testing.T) {
	d := newDaemon(t, "")
	d.start(t)
	_, img := d.clients(t)
	layers := make([]string, 501)
	for i := range layers {
		layers[i] = fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%064x","size":1024}`, i)
	}
	deep := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":` +
		`"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("ab", 32) + `","size":100},"layers":[` +
		strings.Join(layers, ",") + `]}`
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
		case "/v2/hostile/manifests/endless": // 1 GiB, chunked
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for range 1024 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/v2/hostile/manifests/deep":
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write([]byte(deep))
		default:
			http.NotFound(w, r)
		}
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	for _, tc := range []struct {
		ref  string
		code codes.Code
		msg  string
	}{
		{host + "/hostile:endless", codes.ResourceExhausted, "registry.max_manifest_size (4MiB)"},
		{host + "/hostile:deep", codes.FailedPrecondition, "501 layers; overlayfs stacks at most 500"},
	} {
		_, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: tc.ref}})
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("PullImage(%s) = %v, want %v: %s", tc.ref, err, tc.code, tc.msg)
		}
	}
	hwm := peakRSS(t, d.cmd.Process.Pid)
	t.Logf("berthd peak RSS: %d MiB", hwm>>20)
	if hwm > 200<<20 {
		t.Errorf("berthd's peak RSS is %d MiB after the hostile pulls", hwm>>20)
	}
}

// peakRSS is a process's VmHWM in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kib << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
