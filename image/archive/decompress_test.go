package archive

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

func TestDecompress(t *testing.T) {
	tarball := mkTar(t, reg("etc/hostname", "berth\n"), dir("var/"))
	skippable := append([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'm', 'e', 't', 'a'}, zstdBytes(t, tarball)...)
	tests := map[string]struct {
		in, want []byte
	}{
		"plain tar":              {in: tarball, want: tarball},
		"gzip":                   {in: gzipBytes(t, tarball), want: tarball},
		"zstd":                   {in: zstdBytes(t, tarball), want: tarball},
		"zstd skippable frame":   {in: skippable, want: tarball},
		"multi-member gzip":      {in: append(gzipBytes(t, tarball[:100]), gzipBytes(t, tarball[100:])...), want: tarball},
		"empty":                  {in: nil, want: nil},
		"shorter than the magic": {in: []byte{0x1f}, want: []byte{0x1f}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rc, err := Decompress(bytes.NewReader(tc.in))
			if err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

func TestDecompressCorrupt(t *testing.T) {
	gz := gzipBytes(t, mkTar(t, reg("f", "x")))
	gz[len(gz)-5] ^= 0xff // CRC
	rc, err := Decompress(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("Decompress: %v", err)
	}
	defer rc.Close()
	if _, err := Apply(context.Background(), t.TempDir(), rc, Options{}); err == nil {
		t.Fatal("Apply of a gzip stream with a bad CRC succeeded")
	}
}

func TestDecompressApply(t *testing.T) {
	tarball := mkTar(t, reg("etc/hostname", "berth\n"))
	for name, blob := range map[string][]byte{"plain": tarball, "gzip": gzipBytes(t, tarball), "zstd": zstdBytes(t, tarball)} {
		t.Run(name, func(t *testing.T) {
			rc, err := Decompress(bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			defer rc.Close()
			dir := t.TempDir()
			if _, err := Apply(context.Background(), dir, rc, Options{}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "etc/hostname")); err != nil || string(b) != "berth\n" {
				t.Fatalf("etc/hostname = %q, %v", b, err)
			}
		})
	}
}
