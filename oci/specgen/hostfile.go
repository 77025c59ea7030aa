package specgen

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// MaxProfileSize caps a file berth reads because a request named it (a Localhost seccomp profile). moby's default
// profile is ~25 KiB of JSON and the largest real profiles are a few hundred KiB; 1 MiB fits them all while a
// request naming /dev/zero or a huge file cannot make berthd buffer more than that.
const MaxProfileSize = 1 << 20

var (
	// ErrNotRegular is returned for a named file that is not a regular file (a device, a FIFO, a directory).
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is returned for a named file over its size cap.
	ErrTooLarge = errors.New("file too large")
)

// ReadRegularFile reads path, which must be a regular file of at most limit bytes. The open never blocks (O_NONBLOCK:
// a FIFO would hang it until a writer came), never takes a controlling terminal, and with noFollow refuses a symlink
// as the last component; the type is checked on the open file (fstat), so a rename between a check and the read
// cannot swap in a device. At most limit+1 bytes are ever read.
func ReadRegularFile(path string, limit int64, noFollow bool) ([]byte, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	if noFollow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		if err == unix.ELOOP && noFollow {
			return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("is a symlink: %w", ErrNotRegular)}
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	if st.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, over the limit of %d: %w", path, st.Size, limit, ErrTooLarge)
	}
	// The size can grow after the fstat: read one byte past the cap to notice.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: over the limit of %d bytes: %w", path, limit, ErrTooLarge)
	}
	return b, nil
}
