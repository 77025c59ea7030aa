package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthcri/berth/internal/config"
)

// testRegistry is go-containerregistry's in-memory registry on 127.0.0.1 with fault injection.
type testRegistry struct {
	srv  *httptest.Server
	host string

	mu       sync.Mutex
	blobGets map[string]int  // GETs per blob digest
	corrupt  map[string]bool // blobs served with one byte flipped
	stall    map[string]bool // blobs whose body never comes
	user     string          // when set, basic auth with user:pass is required
	pass     string
	raw      map[string]*rawResponse // by URL path: served instead of the registry's own answer
	gotPaths map[string]int          // GETs per URL path
}

// rawResponse is what a hostile registry would send for one path: content the registry itself would refuse or
// that does not match its descriptor.
type rawResponse struct {
	contentType string
	body        []byte
	chunked     bool  // no Content-Length
	repeat      int64 // > 0: body is sent over and over up to this many bytes (or until the client goes)
	sent        int64 // bytes written so far
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{blobGets: map[string]int{}, corrupt: map[string]bool{}, stall: map[string]bool{},
		raw: map[string]*rawResponse{}, gotPaths: map[string]int{}}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		user, pass := r.user, r.pass
		d := ""
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			d = path.Base(req.URL.Path)
			r.blobGets[d]++
		}
		if req.Method == http.MethodGet {
			r.gotPaths[req.URL.Path]++
		}
		corrupt, stall := r.corrupt[d], r.stall[d]
		raw := r.raw[req.URL.Path]
		r.mu.Unlock()
		if u, p, ok := req.BasicAuth(); user != "" && (!ok || u != user || p != pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case raw != nil:
			r.serveRaw(w, req, raw)
		case stall:
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-req.Context().Done()
		case corrupt:
			h.ServeHTTP(&flipWriter{ResponseWriter: w}, req)
		default:
			h.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) serveRaw(w http.ResponseWriter, req *http.Request, raw *rawResponse) {
	if raw.contentType != "" {
		w.Header().Set("Content-Type", raw.contentType)
	}
	size := int64(len(raw.body))
	if raw.repeat > 0 {
		size = raw.repeat
	}
	if !raw.chunked {
		w.Header().Set("Content-Length", fmt.Sprint(size))
	}
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodHead {
		return
	}
	for left := size; left > 0; {
		n, err := w.Write(raw.body[:min(int64(len(raw.body)), left)])
		r.mu.Lock()
		raw.sent += int64(n)
		r.mu.Unlock()
		if err != nil {
			return
		}
		left -= int64(n)
	}
}

// serve makes the registry answer GET and HEAD of path (e.g. /v2/repo/manifests/tag) with raw.
func (r *testRegistry) serve(path string, raw *rawResponse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raw[path] = raw
}

// sentBytes is how much of raw the registry has written.
func (r *testRegistry) sentBytes(raw *rawResponse) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return raw.sent
}

// getsOf counts GETs of a URL path.
func (r *testRegistry) getsOf(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gotPaths[path]
}

func (r *testRegistry) push(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref.String()
}

func (r *testRegistry) pushIndex(t *testing.T, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref.String()
}

func (r *testRegistry) gets(d v1.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets[d.String()]
}

func (r *testRegistry) set(m map[string]bool, d v1.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m[d.String()] = true
}

// flipWriter flips one byte in the middle of the first body write: same size, wrong digest.
type flipWriter struct {
	http.ResponseWriter
	done bool
}

func (w *flipWriter) Write(p []byte) (int, error) {
	if !w.done && len(p) > 0 {
		w.done = true
		q := bytes.Clone(p)
		q[len(q)/2] ^= 0xff
		return w.ResponseWriter.Write(q)
	}
	return w.ResponseWriter.Write(p)
}

// newService opens a service under root whose registry client can only dial loopback addresses: a test
// that would contact any other host (or look one up in DNS) fails instead.
func newService(t *testing.T, root string, reg config.RegistryConfig) *Service {
	t.Helper()
	if reg.MaxConcurrentDownloads == 0 {
		reg.MaxConcurrentDownloads = 3
	}
	if reg.PullProgressTimeout.Duration == 0 {
		reg.PullProgressTimeout.Duration = time.Minute
	}
	s, err := New(context.Background(), Options{RootDir: root, Registry: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.registry.Load().Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Errorf("dial %s %s: not a loopback address", network, addr)
			return nil, fmt.Errorf("test refuses to dial %s", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return s
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// files lists everything under root that is not one of the store's own directories.
func files(t *testing.T, root string) []string {
	t.Helper()
	skeleton := map[string]bool{".": true, "content": true, "content/blobs": true, "content/ingest": true,
		"snapshots": true, "images": true, "content/blobs/sha256": true}
	var out []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !skeleton[rel] {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// tarLayer builds a layer from tar entries; a Linkname makes a hard link.
func tarLayer(t *testing.T, entries ...tar.Header) v1.Layer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		body := []byte(h.Name)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}
