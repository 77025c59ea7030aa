package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// zstdMaxWindow bounds the memory one hostile zstd stream can make a decoder allocate; 128 MiB is the largest
// window the reference encoder uses at any level (including --ultra -22 and the default --long).
const zstdMaxWindow = 1 << 27

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress sniffs the stream's magic bytes: gzip, zstd or uncompressed tar. Anything that is neither gzip nor
// zstd is passed through unchanged (the tar reader rejects garbage). Closing the result releases the decompressor
// (zstd runs goroutines until then); it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	magic := make([]byte, len(zstdMagic))
	n, err := io.ReadFull(r, magic)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("decompress layer: read magic: %w", err)
	}
	magic = magic[:n]
	stream := io.MultiReader(bytes.NewReader(magic), r)
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		// flate reads byte by byte: give it a buffer big enough to keep syscalls rare.
		zr, err := gzip.NewReader(bufio.NewReaderSize(stream, 256<<10))
		if err != nil {
			return nil, fmt.Errorf("decompress layer: gzip: %w", err)
		}
		return zr, nil
	case bytes.Equal(magic, zstdMagic) || isZstdSkippable(magic):
		zr, err := zstd.NewReader(stream, zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("decompress layer: zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	default:
		return io.NopCloser(stream), nil
	}
}

// isZstdSkippable reports a zstd skippable frame (magic 0x184D2A5?), which may open a zstd stream.
func isZstdSkippable(magic []byte) bool {
	return len(magic) == 4 && magic[0]&0xf0 == 0x50 && magic[1] == 0x2a && magic[2] == 0x4d && magic[3] == 0x18
}
