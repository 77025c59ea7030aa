package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
)

// FuzzApply checks that no layer makes Apply panic or touch anything outside the layer dir: neither the sandbox
// around it (reached by relative escapes) nor a fixed sentinel dir that the seeds name by absolute path.
func FuzzApply(f *testing.F) {
	fixed := fixedSentinel(f)
	for _, ents := range escapeCases(fixed) {
		f.Add(caseTar(f, ents))
	}
	f.Add(mkTar(f, dir("a/"), reg("a/f", "x"), hardlink("a/h", "a/f"), symlink("a/l", "f"), reg("a/.wh.g", ""),
		reg("a/.wh..wh..opq", ""), hardlink("b", "f"), ent{hdr: tar.Header{Name: "p", Typeflag: tar.TypeFifo}}))
	f.Add(sparseTar(f, "sparse", 64<<10))
	fixedBefore := snapshot(f, fixed, "")
	f.Fuzz(func(t *testing.T, data []byte) {
		if unpackedSize(data) > 8<<20 {
			t.Skip("would write more than 8 MiB")
		}
		data = fixChecksums(data)
		s := newSandbox(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		limit := NewLimit(16<<20, "fuzz")
		_, err := Apply(ctx, s.layer, bytes.NewReader(data), Options{Lowers: []string{filepath.Join(s.parent, "lower")}, Limit: limit})
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Apply did not finish in 10s")
		}
		s.check(t)
		if limit.Used() > 16<<20 && !errors.Is(err, errdefs.ErrResourceExhausted) {
			t.Fatalf("unpacked %d bytes past the limit without failing: %v", limit.Used(), err)
		}
		if after := snapshot(t, fixed, ""); after != fixedBefore {
			t.Fatalf("fixed sentinel %s changed:\nbefore:\n%s\nafter:\n%s", fixed, fixedBefore, after)
		}
	})
}

// fixedSentinel makes (once for all fuzz workers) a sentinel tree at a path that stays the same across processes,
// so that absolute names in the corpus keep pointing at it.
func fixedSentinel(f *testing.F) string {
	fixed := filepath.Join(os.TempDir(), fmt.Sprintf("berth-archive-fuzz-sentinel-%d", os.Geteuid()))
	if _, err := os.Stat(filepath.Join(fixed, "file")); err == nil {
		return fixed
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "berth-archive-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	mustDoF(f, os.Mkdir(filepath.Join(tmp, "dir"), 0o755))
	mustDoF(f, os.WriteFile(filepath.Join(tmp, "dir/f"), []byte("precious"), 0o644))
	mustDoF(f, os.WriteFile(filepath.Join(tmp, "file"), []byte("precious"), 0o644))
	mustDoF(f, os.Symlink("file", filepath.Join(tmp, "link")))
	// Rename is atomic: a worker losing the race drops its copy.
	if err := os.Rename(tmp, fixed); err != nil {
		os.RemoveAll(tmp)
	}
	return fixed
}

func mustDoF(f *testing.F, err error) {
	if err != nil {
		f.Fatal(err)
	}
}

// unpackedSize adds up the sizes the archive claims, so the fuzzer does not fill the disk with sparse files.
func unpackedSize(data []byte) int64 {
	var n int64
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return n // io.EOF or a broken header, which stops Apply too
		}
		n += max(hdr.Size, 0)
	}
}

// fixChecksums recomputes the checksum of every header block it can find, so that mutated names, types and link
// names reach Apply instead of stopping at archive/tar's checksum test.
func fixChecksums(data []byte) []byte {
	b := bytes.Clone(data)
	for off := 0; off+512 <= len(b); {
		h := b[off : off+512]
		if bytes.Equal(h, make([]byte, 512)) {
			break
		}
		fixChecksum(h)
		size, err := strconv.ParseInt(strings.Trim(string(h[124:136]), " \x00"), 8, 64)
		if err != nil || size < 0 || size > int64(len(b)) {
			break
		}
		off += 512 + int(size+511)&^511
	}
	return b
}

// FuzzWriteSparse checks that writing with holes reads back exactly as a plain write would, at any offset.
func FuzzWriteSparse(f *testing.F) {
	block := make([]byte, holeBlock)
	f.Add(append(append([]byte("head"), block...), "tail"...), uint16(0))
	f.Add(append(block, block...), uint16(100))
	f.Add(append(append(bytes.Repeat([]byte{1}, 5000), make([]byte, 3*holeBlock)...), 2), uint16(4095))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, off uint16) {
		file, err := os.CreateTemp(dir, "sparse-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file.Name())
		defer file.Close()
		fd := int(file.Fd())
		// Two calls, as the copy loop makes them: the split falls anywhere.
		half := len(data) / 3
		if err := writeSparse(fd, data[:half], int64(off)); err != nil {
			t.Fatal(err)
		}
		if err := writeSparse(fd, data[half:], int64(off)+int64(half)); err != nil {
			t.Fatal(err)
		}
		if err := file.Truncate(int64(off) + int64(len(data))); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(file.Name())
		if err != nil {
			t.Fatal(err)
		}
		if want := append(make([]byte, off), data...); !bytes.Equal(got, want) {
			t.Fatalf("read back %d bytes that differ from the %d written at %d", len(got), len(data), off)
		}
	})
}
