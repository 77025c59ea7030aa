// Package archive unpacks one OCI/Docker image layer into its own directory, later used as an overlayfs lower dir.
//
// Every path in a layer is read as if dir were the root of a chroot: "../x" and "/x" both mean dir/x, and
// symlinks met while resolving an entry's parent directory are followed by the kernel confined to dir
// (openat2 RESOLVE_IN_ROOT). The last component of a name is never followed: an entry replaces whatever is there.
// Hard-link targets are looked up the way overlayfs would, through this layer then its lowers, following no
// symlink at all. So nothing outside dir is ever created, changed or read, whatever the layer holds.
package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// Options tune Apply.
type Options struct {
	// Lowers are the already-unpacked dirs of the layers below this one, top-most first. Used only to resolve a
	// hard link whose target is not in this layer (the file is copied up). nil = none available.
	Lowers []string
	// Limit, when set, bounds what this layer unpacks together with the other layers sharing it.
	Limit *Limit
}

// ErrLowerNeeded reports a hard link to a file that is neither in this layer nor in Options.Lowers.
var ErrLowerNeeded = errors.New("hard link target is not in this layer nor in its lower layers")

const (
	maxNameLen   = 4096 // PATH_MAX: longer names cannot be created anyway
	copyBufSize  = 1 << 20
	whiteoutPfx  = ".wh."
	whiteoutMeta = ".wh..wh."
	opaqueMarker = ".wh..wh..opq"
	opaqueXattr  = "trusted.overlay.opaque"
	// overlayXattrPfx is overlayfs' own metadata (redirects, metacopy, opaque...): a layer must not set it itself.
	overlayXattrPfx = "trusted.overlay."
	paxXattrPfx     = "SCHILY.xattr."
)

// Apply unpacks the uncompressed tar stream r into dir (which must exist and be empty) and returns the unpacked
// size in bytes (the contents of regular files). It never creates, modifies or reads anything outside dir (nor
// Lowers for reading). It does not fsync: call Sync once the layer is complete. After the end-of-archive marker
// r is read to EOF, so a caller hashing the stream sees all of it.
//
// ctx is checked between entries and within every buffer of a file's contents, so a deadline stops Apply within
// milliseconds even while it reads nothing (skipping a sparse file's holes). With Options.Limit, Apply fails with
// errdefs.ErrResourceExhausted once the layers sharing it have unpacked more than it allows; a layer that fails with
// ErrLowerNeeded gives back what it took, as it is unpacked again.
func Apply(ctx context.Context, dir string, r io.Reader, opts Options) (int64, error) {
	a, err := newApplier(dir, opts)
	if err != nil {
		return 0, fmt.Errorf("unpack layer into %s: %w", dir, err)
	}
	defer a.close()
	if err := a.run(ctx, r); err != nil {
		if errors.Is(err, ErrLowerNeeded) {
			opts.Limit.give(a.taken)
		}
		return 0, fmt.Errorf("unpack layer into %s: %w", dir, err)
	}
	return a.size, nil
}

// applier holds the state of one Apply call; several run in parallel, so nothing here is shared.
type applier struct {
	ctx      context.Context
	root     int // O_PATH fd of dir
	lowers   []string
	lowerFDs []int // O_PATH fds of lowers, opened on first use; -1 until then
	buf      []byte
	size     int64
	limit    *Limit
	taken    int64                       // of limit
	stream   *ctxReader                  // the tar stream, counting what it delivers
	dirTimes map[string][2]unix.Timespec // set once all entries are written: creating children changes them
	copies   map[string]copied           // lower files copied up for hard links, by their path

	// parentPath/parentFD cache the directory of the previous entry: tar streams list a directory's files together.
	parentPath string
	parentFD   int  // -1 when nothing is cached
	stale      bool // a dir or symlink was removed since parentFD was resolved
}

func newApplier(dir string, opts Options) (*applier, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(names) > 0 {
		return nil, errdefs.FailedPrecondition("directory %s is not empty (holds %q)", dir, names[0])
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	a := &applier{
		root:     root,
		limit:    opts.Limit,
		lowers:   opts.Lowers,
		lowerFDs: make([]int, len(opts.Lowers)),
		dirTimes: make(map[string][2]unix.Timespec),
		copies:   make(map[string]copied),
		parentFD: -1,
	}
	for i := range a.lowerFDs {
		a.lowerFDs[i] = -1
	}
	// Not pooled: one allocation per layer is nothing beside its I/O, and an idle daemon should not keep it.
	a.buf = make([]byte, copyBufSize)
	return a, nil
}

func (a *applier) close() {
	if a.parentFD >= 0 {
		unix.Close(a.parentFD)
	}
	for _, fd := range a.lowerFDs {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	unix.Close(a.root)
}

func (a *applier) run(ctx context.Context, r io.Reader) error {
	cr := &ctxReader{ctx: ctx, r: r, a: a}
	a.ctx, a.stream = ctx, cr
	tr := tar.NewReader(cr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// ErrInsecurePath comes with a valid header: names are confined to dir below.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %.256q: %w", hdr.Name, err)
		}
	}
	if err := a.setDirTimes(); err != nil {
		return err
	}
	if _, err := io.CopyBuffer(io.Discard, cr, a.buf); err != nil {
		return fmt.Errorf("read past end of tar: %w", err)
	}
	return nil
}

// entry applies one tar header.
func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // ignored, as containerd does: archive/tar does not carry them over, layers use them for comments
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	dirPath, base := splitPath(name)
	if strings.HasPrefix(base, whiteoutPfx) {
		return a.whiteout(dirPath, base)
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return errdefs.InvalidArgument("typeflag", "%q for the layer root, want a directory", hdr.Typeflag)
		}
		return a.dir(a.root, ".", "", hdr)
	}
	pfd, err := a.parent(dirPath)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.dir(pfd, base, name, hdr)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		return a.regular(pfd, base, hdr, r)
	case tar.TypeSymlink:
		return a.symlink(pfd, base, hdr)
	case tar.TypeLink:
		return a.link(pfd, base, name, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return a.device(pfd, base, hdr)
	default:
		return errdefs.InvalidArgument("typeflag", "%q is not supported", hdr.Typeflag)
	}
}

// cleanName maps a tar name to a path relative to dir with no ".", ".." or empty components; "" is dir itself.
func cleanName(name string) (string, error) {
	if len(name) > maxNameLen {
		return "", errdefs.InvalidArgument("name", "%d bytes long, limit %d", len(name), maxNameLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errdefs.InvalidArgument("name", "contains a NUL byte")
	}
	return cleanPath(name), nil
}

func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// ctxReader stops reading the tar stream once ctx is done, and counts what it delivers (headers, contents, padding:
// everything decompression produced) against the limit.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	a   *applier
	n   int64 // bytes delivered
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	// Bytes over the limit are not delivered: io.ReadFull, as archive/tar uses it, drops an error that comes
	// with a full read.
	if lerr := c.a.take(int64(n)); lerr != nil {
		return 0, lerr
	}
	c.n += int64(n)
	return n, err
}

// Sync flushes the filesystem holding dir (syncfs): one call per unpacked layer instead of an fsync per file.
func Sync(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync layer %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync layer %s: %w", dir, err)
	}
	return nil
}
