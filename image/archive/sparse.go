package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// archive/tar reads every sparse format (old GNU 'S' headers, PAX 0.0, 0.1 and 1.0) but keeps the sparse map to
// itself (golang/go#22735): its Reader returns the holes as runs of NUL bytes. So the holes are found again in what
// it returns: a block of zeros in a sparse entry is not written but skipped, and a hole at the end is made by
// ftruncate. Reading a hole costs memclr time and no stream bytes, which is why Limit counts holes and the copy loop
// checks ctx itself.

// holeBlock is the granularity of holes: a filesystem block.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// isSparse reports an entry archive/tar read as sparse.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// copyContents writes the contents of the current entry from r to fd and returns how many bytes it holds. The
// content of a sparse entry is written with holes. Each buffer checks ctx and charges the limit with the bytes that
// came from no stream byte: the holes archive/tar made up.
func (a *applier) copyContents(fd int, r io.Reader, sparse bool) (int64, error) {
	var off int64
	for {
		if err := a.ctx.Err(); err != nil {
			return off, err
		}
		before := a.stream.n
		n, rerr := r.Read(a.buf)
		if n > 0 {
			if err := a.take(int64(n) - (a.stream.n - before)); err != nil {
				return off, err
			}
			var err error
			if sparse {
				err = writeSparse(fd, a.buf[:n], off)
			} else {
				_, err = fdWriter(fd).Write(a.buf[:n])
			}
			if err != nil {
				return off, fmt.Errorf("write: %w", err)
			}
			off += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return off, rerr
		}
	}
	if sparse {
		// The last blocks may have been holes: the file still has to end where the entry does.
		if err := unix.Ftruncate(fd, off); err != nil {
			return off, fmt.Errorf("truncate: %w", err)
		}
	}
	return off, nil
}

// writeSparse writes p at offset off of fd, leaving out every whole filesystem block of zeros (a hole, once the file
// extends past it).
func writeSparse(fd int, p []byte, off int64) error {
	start := 0 // of the data not yet written
	for i := 0; i < len(p); {
		// The block holding file offset off+i ends at the next multiple of holeBlock.
		end := min(len(p), i+int(holeBlock-(off+int64(i))%holeBlock))
		if end-i == holeBlock && bytes.Equal(p[i:end], zeroBlock[:]) {
			if err := pwriteAll(fd, p[start:i], off+int64(start)); err != nil {
				return err
			}
			start = end
		}
		i = end
	}
	return pwriteAll(fd, p[start:], off+int64(start))
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}
