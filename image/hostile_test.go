package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthcri/berth/image/registry"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// Hostile images are served by the loopback test registry from raw responses (testRegistry.serve), so that any
// part of them can lie: sizes, digests, nesting, counts.

// hostileImage is an image made by hand: its config, layer blobs and manifest, each changeable before serving.
type hostileImage struct {
	config   []byte
	layers   [][]byte // blobs as served
	manifest ocispec.Manifest
}

// newHostileImage makes a valid image of layer blobs (uncompressed tars, or gzipped ones: diffIDs are given
// separately when they differ from the blobs' digests).
func newHostileImage(t *testing.T, layers [][]byte, diffIDs []digest.Digest) *hostileImage {
	t.Helper()
	if diffIDs == nil {
		for _, l := range layers {
			diffIDs = append(diffIDs, digest.FromBytes(l))
		}
	}
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileImage{config: raw, layers: layers}
	h.manifest = ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(raw), Size: int64(len(raw))}}
	for _, l := range layers {
		h.manifest.Layers = append(h.manifest.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer,
			Digest: digest.FromBytes(l), Size: int64(len(l))})
	}
	return h
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveImage serves h's blobs and its manifest under repo:tag, and returns the reference.
func (r *testRegistry) serveImage(t *testing.T, repo, tag string, h *hostileImage) string {
	t.Helper()
	r.serve(blobPath(repo, digest.FromBytes(h.config)), &rawResponse{body: h.config})
	for _, l := range h.layers {
		r.serve(blobPath(repo, digest.FromBytes(l)), &rawResponse{body: l})
	}
	m := mustJSON(t, h.manifest)
	r.serve(manifestPath(repo, tag), &rawResponse{contentType: ocispec.MediaTypeImageManifest, body: m})
	r.serve(manifestPath(repo, digest.FromBytes(m).String()), &rawResponse{contentType: ocispec.MediaTypeImageManifest, body: m})
	return r.host + "/" + repo + ":" + tag
}

// serveManifest serves body (a manifest or index) under repo by its digest and returns its descriptor.
func (r *testRegistry) serveManifest(repo, mediaType string, body []byte) ocispec.Descriptor {
	d := digest.FromBytes(body)
	r.serve(manifestPath(repo, d.String()), &rawResponse{contentType: mediaType, body: body})
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(body)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}}
}

func blobPath(repo string, d digest.Digest) string { return "/v2/" + repo + "/blobs/" + d.String() }
func manifestPath(repo, ref string) string         { return "/v2/" + repo + "/manifests/" + ref }

func index(descs ...ocispec.Descriptor) ocispec.Index {
	return ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
}

// emptyTar is a layer with one empty file, name.
func emptyTar(t *testing.T, name string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return b.Bytes()
}

// checkPullFails pulls ref, wants an error wrapping want whose message holds every one of msgs, and checks the
// failed pull left nothing in root.
func checkPullFails(t *testing.T, s *Service, root, ref string, want error, msgs ...string) {
	t.Helper()
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, want) {
		t.Fatalf("Pull = %v, want %v", err, want)
	}
	for _, m := range msgs {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("Pull error %q does not say %q", err, m)
		}
	}
	if left := files(t, root); len(left) != 0 {
		t.Errorf("failed pull left files: %q", left)
	}
	if l := s.List(); len(l) != 0 {
		t.Errorf("failed pull left an image: %+v", l)
	}
}

// TestPullBoundedManifestsAndConfigs: manifests, indexes and configs are read under their caps, before they are
// buffered, and never past what their descriptor says.
func TestPullBoundedManifestsAndConfigs(t *testing.T) {
	const repo = "hostile/app"
	for name, tc := range map[string]struct {
		// setup serves the image and returns its reference and, when the test must check how much of it was
		// sent, the response to watch, and paths that must never be fetched.
		setup   func(t *testing.T, r *testRegistry) (ref string, watch *rawResponse, never []string)
		err     error
		msgs    []string
		maxSent int64
	}{
		"a config whose descriptor claims more than registry.max_config_size is never fetched": {
			setup: func(t *testing.T, r *testRegistry) (string, *rawResponse, []string) {
				h := newHostileImage(t, [][]byte{emptyTar(t, "f")}, nil)
				h.manifest.Config.Size = 256 << 20
				return r.serveImage(t, repo, "1", h), nil, []string{blobPath(repo, h.manifest.Config.Digest)}
			},
			err:  errdefs.ErrResourceExhausted,
			msgs: []string{"config", ocispec.MediaTypeImageConfig, "registry.max_config_size", "8MiB"},
		},
		"a config that streams past its descriptor's size (no Content-Length) is cut off": {
			setup: func(t *testing.T, r *testRegistry) (string, *rawResponse, []string) {
				h := newHostileImage(t, [][]byte{emptyTar(t, "f")}, nil)
				ref := r.serveImage(t, repo, "1", h)
				watch := &rawResponse{body: h.config, chunked: true, repeat: 256 << 20}
				r.serve(blobPath(repo, h.manifest.Config.Digest), watch)
				return ref, watch, nil
			},
			err:     errdefs.ErrFailedPrecondition,
			msgs:    []string{"config", "more than"},
			maxSent: 16 << 20,
		},
		"a manifest over registry.max_manifest_size (with Content-Length) is refused": {
			setup: func(t *testing.T, r *testRegistry) (string, *rawResponse, []string) {
				h := newHostileImage(t, [][]byte{emptyTar(t, "f")}, nil)
				h.manifest.Annotations = map[string]string{"pad": strings.Repeat("x", 5<<20)}
				return r.serveImage(t, repo, "1", h), nil, nil
			},
			err:  errdefs.ErrResourceExhausted,
			msgs: []string{"manifest", repo + ":1", "registry.max_manifest_size", "4MiB"},
		},
		"a manifest streamed past registry.max_manifest_size (no Content-Length) is cut off": {
			setup: func(t *testing.T, r *testRegistry) (string, *rawResponse, []string) {
				watch := &rawResponse{contentType: ocispec.MediaTypeImageManifest, body: []byte(`{"a":"xxxxxxxxxxxxxxxxxxxx`),
					chunked: true, repeat: 256 << 20}
				r.serve(manifestPath(repo, "1"), watch)
				return r.host + "/" + repo + ":1", watch, nil
			},
			err:     errdefs.ErrResourceExhausted,
			msgs:    []string{"manifest", "registry.max_manifest_size"},
			maxSent: 16 << 20,
		},
		"an index entry claiming more than registry.max_manifest_size is never fetched": {
			setup: func(t *testing.T, r *testRegistry) (string, *rawResponse, []string) {
				h := newHostileImage(t, [][]byte{emptyTar(t, "f")}, nil)
				r.serveImage(t, repo, "img", h)
				child := r.serveManifest(repo, ocispec.MediaTypeImageManifest, mustJSON(t, h.manifest))
				child.Size = 64 << 20
				r.serve(manifestPath(repo, "1"), &rawResponse{contentType: ocispec.MediaTypeImageIndex, body: mustJSON(t, index(child))})
				return r.host + "/" + repo + ":1", nil, []string{manifestPath(repo, child.Digest.String())}
			},
			err:  errdefs.ErrResourceExhausted,
			msgs: []string{"registry.max_manifest_size", ocispec.MediaTypeImageManifest},
		},
		"an index entry served longer than its descriptor is cut off": {
			setup: func(t *testing.T, r *testRegistry) (string, *rawResponse, []string) {
				h := newHostileImage(t, [][]byte{emptyTar(t, "f")}, nil)
				r.serveImage(t, repo, "img", h)
				m := mustJSON(t, h.manifest)
				child := r.serveManifest(repo, ocispec.MediaTypeImageManifest, m)
				watch := &rawResponse{contentType: ocispec.MediaTypeImageManifest, body: append(m, ' '), chunked: true, repeat: 256 << 20}
				r.serve(manifestPath(repo, child.Digest.String()), watch)
				r.serve(manifestPath(repo, "1"), &rawResponse{contentType: ocispec.MediaTypeImageIndex, body: mustJSON(t, index(child))})
				return r.host + "/" + repo + ":1", watch, nil
			},
			err:     errdefs.ErrFailedPrecondition,
			msgs:    []string{"manifest " + "sha256:", "more than"},
			maxSent: 16 << 20,
		},
	} {
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t)
			ref, watch, never := tc.setup(t, reg)
			root := t.TempDir()
			s := newService(t, root, config.RegistryConfig{})
			checkPullFails(t, s, root, ref, tc.err, tc.msgs...)
			if watch != nil {
				if sent := reg.sentBytes(watch); sent > tc.maxSent {
					t.Errorf("the registry sent %d bytes of the response before berth stopped reading, want at most %d", sent, tc.maxSent)
				}
			}
			for _, p := range never {
				if n := reg.getsOf(p); n != 0 {
					t.Errorf("GET %s happened %d times, want never", p, n)
				}
			}
		})
	}
}

// TestPullIndexTree: nested indexes are followed to a bounded depth, an index lists a bounded number of entries,
// and an index that lists itself fails at once.
func TestPullIndexTree(t *testing.T) {
	const repo = "tree/app"
	// nest serves levels indexes, each listing the next, above the image h; it returns the top index's body.
	nest := func(t *testing.T, r *testRegistry, h *hostileImage, levels int) []byte {
		d := r.serveManifest(repo, ocispec.MediaTypeImageManifest, mustJSON(t, h.manifest))
		var body []byte
		for range levels {
			body = mustJSON(t, index(d))
			d = r.serveManifest(repo, ocispec.MediaTypeImageIndex, body)
		}
		return body
	}
	for name, tc := range map[string]struct {
		setup func(t *testing.T, r *testRegistry, h *hostileImage) (never []string)
		err   error // nil: the pull succeeds
		msgs  []string
	}{
		"indexes nested as deep as the cap are followed": {
			setup: func(t *testing.T, r *testRegistry, h *hostileImage) []string {
				r.serve(manifestPath(repo, "1"), &rawResponse{contentType: ocispec.MediaTypeImageIndex, body: nest(t, r, h, registry.MaxIndexDepth)})
				return nil
			},
		},
		"indexes nested deeper than the cap fail before the last one is fetched": {
			setup: func(t *testing.T, r *testRegistry, h *hostileImage) []string {
				top := nest(t, r, h, registry.MaxIndexDepth+1)
				r.serve(manifestPath(repo, "1"), &rawResponse{contentType: ocispec.MediaTypeImageIndex, body: top})
				// The innermost index is the one that must not be fetched.
				inner := mustJSON(t, index(r.serveManifest(repo, ocispec.MediaTypeImageManifest, mustJSON(t, h.manifest))))
				return []string{manifestPath(repo, digest.FromBytes(inner).String())}
			},
			err:  errdefs.ErrFailedPrecondition,
			msgs: []string{"indexes nested deeper than " + fmt.Sprint(registry.MaxIndexDepth)},
		},
		"an index with more entries than the cap fails before any entry is fetched": {
			setup: func(t *testing.T, r *testRegistry, h *hostileImage) []string {
				child := r.serveManifest(repo, ocispec.MediaTypeImageManifest, mustJSON(t, h.manifest))
				var entries []ocispec.Descriptor
				for i := range registry.MaxIndexEntries {
					entries = append(entries, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
						Digest: digest.FromString(fmt.Sprint(i)), Size: 100, Platform: &ocispec.Platform{OS: "plan9", Architecture: "mips"}})
				}
				entries = append(entries, child)
				r.serve(manifestPath(repo, "1"), &rawResponse{contentType: ocispec.MediaTypeImageIndex, body: mustJSON(t, index(entries...))})
				return []string{manifestPath(repo, child.Digest.String())}
			},
			err:  errdefs.ErrFailedPrecondition,
			msgs: []string{fmt.Sprintf("%d entries", registry.MaxIndexEntries+1), fmt.Sprintf("at most %d", registry.MaxIndexEntries)},
		},
		"an index whose entry is the index itself fails at once": {
			setup: func(t *testing.T, r *testRegistry, h *hostileImage) []string {
				// The entry names some digest, and the registry answers it with the very same index.
				entry := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("elsewhere"),
					Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}}
				self := mustJSON(t, index(entry))
				for int64(len(self)) != entry.Size { // the entry's size is that of the index holding it
					entry.Size = int64(len(self))
					self = mustJSON(t, index(entry))
				}
				r.serve(manifestPath(repo, "1"), &rawResponse{contentType: ocispec.MediaTypeImageIndex, body: self})
				r.serve(manifestPath(repo, entry.Digest.String()), &rawResponse{contentType: ocispec.MediaTypeImageIndex, body: self})
				return nil
			},
			err:  errdefs.ErrFailedPrecondition,
			msgs: []string{"lists itself"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t)
			h := newHostileImage(t, [][]byte{emptyTar(t, "f")}, nil)
			reg.serveImage(t, repo, "img", h)
			never := tc.setup(t, reg, h)
			root := t.TempDir()
			s := newService(t, root, config.RegistryConfig{})
			ref := reg.host + "/" + repo + ":1"
			if tc.err == nil {
				img, err := s.Pull(context.Background(), ref, nil)
				if err != nil {
					t.Fatal(err)
				}
				if img.ID != h.manifest.Config.Digest.String() {
					t.Errorf("pulled %s, want %s", img.ID, h.manifest.Config.Digest)
				}
				return
			}
			checkPullFails(t, s, root, ref, tc.err, tc.msgs...)
			for _, p := range never {
				if n := reg.getsOf(p); n != 0 {
					t.Errorf("GET %s happened %d times, want never", p, n)
				}
			}
		})
	}
}

// TestPullLayerCount: overlayfs stacks at most 500 lower layers, so an image of more is refused at pull, before any
// of its blobs is fetched, rather than pulled for CreateContainer to fail at the mount.
func TestPullLayerCount(t *testing.T) {
	const repo = "deep/app"
	for name, tc := range map[string]struct {
		layers int
		err    error
	}{
		"as many layers as overlayfs stacks": {layers: maxLayers},
		"one more":                           {layers: maxLayers + 1, err: errdefs.ErrFailedPrecondition},
		"a thousand":                         {layers: 1000, err: errdefs.ErrFailedPrecondition},
	} {
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t)
			layer := emptyTar(t, "f")
			layers := make([][]byte, tc.layers)
			for i := range layers {
				layers[i] = layer
			}
			h := newHostileImage(t, layers, nil)
			ref := reg.serveImage(t, repo, "1", h)
			root := t.TempDir()
			s := newService(t, root, config.RegistryConfig{})
			if tc.err == nil {
				img, err := s.Pull(context.Background(), ref, nil)
				if err != nil || len(img.Layers) != tc.layers {
					t.Fatalf("Pull = %d layers, %v; want %d", len(img.Layers), err, tc.layers)
				}
				return
			}
			checkPullFails(t, s, root, ref, tc.err, fmt.Sprintf("%d layers", tc.layers), fmt.Sprintf("at most %d", maxLayers))
			for _, p := range []string{blobPath(repo, h.manifest.Layers[0].Digest), blobPath(repo, h.manifest.Config.Digest)} {
				if n := reg.getsOf(p); n != 0 {
					t.Errorf("GET %s happened %d times, want never", p, n)
				}
			}
		})
	}
}
