package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// Layers that would unpack without bound, served by the loopback test registry as hostile images (hostile_test.go).

// sparseLayer is a tar holding one PAX 0.1 sparse file of the given logical size with 4 bytes of data. The PAX
// header is made by hand: archive/tar's writer drops GNU.sparse records.
func sparseLayer(t *testing.T, name string, size int64) []byte {
	t.Helper()
	records := paxRecord("GNU.sparse.numblocks", "1") + paxRecord("GNU.sparse.map", "0,4") +
		paxRecord("GNU.sparse.size", fmt.Sprint(size)) + paxRecord("GNU.sparse.name", name)
	tarOf := func(name, body string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)),
			Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
		tw.Close()
		return b.Bytes()
	}
	pax := tarOf("PaxHeaders/"+name, records)
	pax = pax[:len(pax)-1024] // no end-of-archive blocks
	pax[156] = tar.TypeXHeader
	copy(pax[148:156], "        ")
	sum := 0
	for _, c := range pax[:512] {
		sum += int(c)
	}
	copy(pax[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return append(pax, tarOf(name, "data")...)
}

func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for n != len(fmt.Sprint(n))+len(k)+len(v)+3 {
		n = len(fmt.Sprint(n)) + len(k) + len(v) + 3
	}
	return fmt.Sprintf("%d %s=%s\n", n, k, v)
}

// TestPullSparseStops: a sparse entry reads no byte of the stream while its holes are skipped; a client deadline
// and the no-progress timeout still stop the pull within about a second, leaving nothing behind.
func TestPullSparseStops(t *testing.T) {
	const repo = "sparse/app"
	layer := sparseLayer(t, "huge", 32<<30) // under the default registry.max_unpacked_size
	for name, tc := range map[string]struct {
		deadline time.Duration
		reg      config.RegistryConfig
		err      error
		msg      string
	}{
		"client deadline": {deadline: 50 * time.Millisecond, err: context.DeadlineExceeded},
		"no-progress timeout": {reg: config.RegistryConfig{PullProgressTimeout: config.Duration{Duration: 200 * time.Millisecond}},
			err: errdefs.ErrUnavailable, msg: "no progress"},
	} {
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t)
			ref := reg.serveImage(t, repo, "1", newHostileImage(t, [][]byte{layer}, nil))
			root := t.TempDir()
			s := newService(t, root, tc.reg)
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			start := time.Now()
			_, err := s.Pull(ctx, ref, nil)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Pull = %v, want %v %s", err, tc.err, tc.msg)
			}
			if d := time.Since(start) - tc.deadline - tc.reg.PullProgressTimeout.Duration; d > 1500*time.Millisecond {
				t.Errorf("Pull returned %s after it should have stopped", d)
			}
			if left := files(t, root); len(left) != 0 {
				t.Errorf("failed pull left files: %q", left)
			}
		})
	}
}

// gzipBomb is a gzipped tar of n files of 1 MiB of zeros, built of gzip members so that it costs one compression.
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestCompression)
	member := func(b []byte) []byte {
		var out bytes.Buffer
		zw.Reset(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	zeros := member(make([]byte, 1<<20))
	var bomb []byte
	for i := range n {
		var hdr bytes.Buffer
		tw := tar.NewWriter(&hdr)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprint(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		bomb = append(append(bomb, member(hdr.Bytes())...), zeros...)
	}
	return append(bomb, member(make([]byte, 1024))...)
}

// filesTar is a tar of n files of size bytes each.
func filesTar(t *testing.T, n, size int) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := range n {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprint(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte{'x'}, size))
	}
	tw.Close()
	return b.Bytes()
}

// TestPullUnpackedLimit: registry.max_unpacked_size bounds what a pull unpacks across its layers: decompression
// bombs, entries that are all header, sparse files' holes. A pull over it fails naming the setting and leaves
// nothing behind.
func TestPullUnpackedLimit(t *testing.T) {
	const repo = "bomb/app"
	bogus := digest.FromString("the pull fails before the diff id is checked")
	for name, tc := range map[string]struct {
		layers  [][]byte
		diffIDs []digest.Digest
		err     error // nil: the pull succeeds
	}{
		"within the limit":    {layers: [][]byte{filesTar(t, 1, 1<<20)}},
		"a gzip bomb":         {layers: [][]byte{gzipBomb(t, 1024)}, diffIDs: []digest.Digest{bogus}, err: errdefs.ErrResourceExhausted},
		"8192 empty files":    {layers: [][]byte{filesTar(t, 8192, 0)}, err: errdefs.ErrResourceExhausted},
		"a sparse 1 TiB file": {layers: [][]byte{sparseLayer(t, "huge", 1<<40)}, err: errdefs.ErrResourceExhausted},
		"layers over the limit together, each within it": {layers: [][]byte{filesTar(t, 3, 512<<10), filesTar(t, 2, 512<<10)},
			err: errdefs.ErrResourceExhausted},
	} {
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t)
			h := newHostileImage(t, tc.layers, tc.diffIDs)
			if tc.diffIDs != nil {
				for i := range h.manifest.Layers {
					h.manifest.Layers[i].MediaType = ocispec.MediaTypeImageLayerGzip
				}
			}
			ref := reg.serveImage(t, repo, "1", h)
			root := t.TempDir()
			s := newService(t, root, config.RegistryConfig{MaxUnpackedSize: 2 << 20})
			if tc.err == nil {
				if _, err := s.Pull(context.Background(), ref, nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			checkPullFails(t, s, root, ref, tc.err, "registry.max_unpacked_size (2MiB)", "layer sha256:")
		})
	}
}
