package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
)

// The fixtures in testdata were made by GNU tar 1.34 from two sparse files, one format each:
//
//	printf head > f; truncate -s 1073741824 f; printf tail >> f   # + 100 bytes 0..99 at offset 500000000
//	printf data > g; truncate -s 67108864 g                        # a hole up to the end
//	tar --sparse --format=gnu -cf gnu.tar f g                      # old GNU 'S' headers
//	tar --sparse --format=posix --sparse-version=V -cf paxV.tar f g   # V = 0.0, 0.1, 1.0
//
// (with --owner=0 --group=0 --mtime=@1600000000, gzipped). Each tar is 20 KiB for 1.1 GiB of files.
var sparseFixtures = []string{"gnu.tar.gz", "pax0.0.tar.gz", "pax0.1.tar.gz", "pax1.0.tar.gz"}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestApplySparse: sparse entries of every format archive/tar reads become files with holes, not 1 GiB of
// written zeros, and read back exactly as the tar says.
func TestApplySparse(t *testing.T) {
	pattern := make([]byte, 100)
	for i := range pattern {
		pattern[i] = byte(i)
	}
	type region struct {
		off  int64
		want []byte
	}
	files := map[string]struct {
		size    int64
		regions []region
	}{
		"f": {1<<30 + 4, []region{{0, []byte("head")}, {4, make([]byte, 4092)}, {500000000, pattern},
			{499999000, make([]byte, 1000)}, {1 << 30, []byte("tail")}, {1<<30 - 4096, make([]byte, 4096)}}},
		"g": {64 << 20, []region{{0, []byte("data")}, {64<<20 - 4096, make([]byte, 4096)}}},
	}
	for _, fixture := range sparseFixtures {
		t.Run(fixture, func(t *testing.T) {
			s := newSandbox(t)
			if _, err := Apply(context.Background(), s.layer, bytes.NewReader(readFixture(t, fixture)), Options{}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for name, want := range files {
				p := filepath.Join(s.layer, name)
				st := lstat(t, p)
				if st.Size != want.size {
					t.Errorf("%s: size %d, want %d", name, st.Size, want.size)
				}
				if used := st.Blocks * 512; used > 1<<20 {
					t.Errorf("%s: %d bytes allocated for a sparse file of %d bytes: holes were written as zeros", name, used, st.Size)
				}
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range want.regions {
					got := make([]byte, len(r.want))
					if _, err := f.ReadAt(got, r.off); err != nil && err != io.EOF {
						t.Fatal(err)
					}
					if !bytes.Equal(got, r.want) {
						t.Errorf("%s at %d: %.16q…, want %.16q…", name, r.off, got, r.want)
					}
				}
				f.Close()
			}
			s.check(t)
		})
	}
}

// sparseTar is one PAX 0.1 sparse entry of the given logical size holding only "data" at offset 0 (archive/tar's
// writer drops GNU.sparse records, so the PAX header is made by hand).
func sparseTar(t testing.TB, name string, size int64) []byte {
	t.Helper()
	records := paxRecord("GNU.sparse.numblocks", "1") + paxRecord("GNU.sparse.map", "0,4") +
		paxRecord("GNU.sparse.size", strconv.FormatInt(size, 10)) + paxRecord("GNU.sparse.name", name)
	return paxTar(t, records, reg(name, "data"))
}

// paxRecord formats one PAX record: "<length> <key>=<value>\n", the length counting itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for n != len(strconv.Itoa(n))+len(k)+len(v)+3 {
		n = len(strconv.Itoa(n)) + len(k) + len(v) + 3
	}
	return strconv.Itoa(n) + " " + k + "=" + v + "\n"
}

// TestApplySparseDeadline: the 1.5 KiB entry claiming 1 TiB that once wrote zeros past any deadline. Skipping its
// holes reads no byte of the stream, so only a check inside the copy loop notices the deadline.
func TestApplySparseDeadline(t *testing.T) {
	tarball := sparseTar(t, "huge", 1<<40)
	s := newSandbox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Apply(ctx, s.layer, bytes.NewReader(tarball), Options{})
	if d := time.Since(start); d > time.Second {
		t.Errorf("Apply returned %s after a 50ms deadline", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply: %v, want %v", err, context.DeadlineExceeded)
	}
}

// TestApplyLimit: what the layers of one image unpack is bounded: tar streams, headers included, sparse holes and
// files copied up for hard links all count, across the layers sharing a Limit.
func TestApplyLimit(t *testing.T) {
	const name = "registry.max_unpacked_size (1MiB)"
	kib := func(n int) string { return string(bytes.Repeat([]byte("x"), n<<10)) }
	many := make([]ent, 4096)
	for i := range many {
		many[i] = reg(strconv.Itoa(i), "")
	}
	for tname, tc := range map[string]struct {
		layers [][]byte // applied in order, sharing one limit
		lower  map[string]string
		err    error // of the last layer
		used   int64 // when > 0 and no error: what the limit holds after
	}{
		"within the limit":                {layers: [][]byte{mkTar(t, reg("a", kib(100)))}},
		"a file larger than what is left": {layers: [][]byte{mkTar(t, reg("a", kib(1100)))}, err: errdefs.ErrResourceExhausted},
		"two layers over it together": {layers: [][]byte{mkTar(t, reg("a", kib(600))), mkTar(t, reg("b", kib(600)))},
			err: errdefs.ErrResourceExhausted},
		"headers count: 4096 empty files": {layers: [][]byte{mkTar(t, many...)}, err: errdefs.ErrResourceExhausted},
		"sparse holes count":              {layers: [][]byte{sparseTar(t, "s", 2<<20)}, err: errdefs.ErrResourceExhausted},
		"sparse holes within the limit":   {layers: [][]byte{sparseTar(t, "s", 512<<10)}, used: int64(len(sparseTar(t, "s", 512<<10))) + 512<<10 - 4},
		"files copied up from lowers count": {layers: [][]byte{mkTar(t, hardlink("h", "big"))},
			lower: map[string]string{"big": kib(1100)}, err: errdefs.ErrResourceExhausted},
		"a layer that needs its lowers gives back what it took": {layers: [][]byte{mkTar(t, reg("a", kib(100)),
			hardlink("h", "missing"))}, err: ErrLowerNeeded, used: -1},
	} {
		t.Run(tname, func(t *testing.T) {
			limit := NewLimit(1<<20, name)
			var err error
			for _, l := range tc.layers {
				s := newSandbox(t)
				var lowers []string
				if tc.lower != nil {
					lower := filepath.Join(s.parent, "lower")
					for n, body := range tc.lower {
						mustDo(t, os.WriteFile(filepath.Join(lower, n), []byte(body), 0o644))
					}
					lowers = []string{lower}
				}
				if _, err = Apply(context.Background(), s.layer, bytes.NewReader(l), Options{Limit: limit, Lowers: lowers}); err != nil {
					break
				}
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Apply: %v, want %v", err, tc.err)
				}
				if tc.err == errdefs.ErrResourceExhausted && !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			} else if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			switch {
			case tc.used < 0 && limit.Used() != 0:
				t.Errorf("limit holds %d bytes after ErrLowerNeeded, want 0", limit.Used())
			case tc.used > 0 && limit.Used() != tc.used:
				t.Errorf("limit holds %d bytes, want %d", limit.Used(), tc.used)
			}
		})
	}
}

// TestApplyLimitStopsABomb: 4 GiB of zeros gzipped to 4 MiB stops at the limit, long before the end of the
// compressed stream. The bomb is 4096 files of 1 MiB, each of which fits, so it is the count of decompressed bytes
// that stops it; it is built of gzip members (a gzip stream may be a concatenation), the 1 MiB of zeros compressed
// once.
func TestApplyLimitStopsABomb(t *testing.T) {
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
	for i := range 4096 {
		var hdr bytes.Buffer
		tw := tar.NewWriter(&hdr)
		mustDo(t, tw.WriteHeader(&tar.Header{Name: strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 20}))
		bomb = append(append(bomb, member(hdr.Bytes())...), zeros...)
	}
	bomb = append(bomb, member(make([]byte, 1024))...)
	r := bytes.NewReader(bomb)
	dr, err := Decompress(r)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	limit := NewLimit(4<<20, "registry.max_unpacked_size (4MiB)")
	_, err = Apply(context.Background(), newSandbox(t).layer, dr, Options{Limit: limit})
	if !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("Apply: %v, want %v", err, errdefs.ErrResourceExhausted)
	}
	if read := len(bomb) - r.Len(); read > len(bomb)/8 {
		t.Errorf("read %d of %d compressed bytes before stopping", read, len(bomb))
	}
}
