package archive

import (
	"archive/tar"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// meta is what an entry sets on the node it creates, after its contents.
type meta struct {
	uid, gid int
	mode     uint32 // permission bits with setuid, setgid and sticky
	atime    unix.Timespec
	mtime    unix.Timespec
	xattrs   []xattr
}

type xattr struct {
	name  string
	value []byte
}

func metaFromHeader(hdr *tar.Header) (meta, error) {
	if hdr.Uid < 0 || hdr.Uid >= math.MaxUint32 {
		return meta{}, errdefs.InvalidArgument("uid", "%d out of range", hdr.Uid)
	}
	if hdr.Gid < 0 || hdr.Gid >= math.MaxUint32 {
		return meta{}, errdefs.InvalidArgument("gid", "%d out of range", hdr.Gid)
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	m := meta{
		uid:   hdr.Uid,
		gid:   hdr.Gid,
		mode:  uint32(hdr.Mode & 0o7777),
		atime: timespec(atime),
		mtime: timespec(hdr.ModTime),
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPfx)
		if !ok || strings.HasPrefix(name, overlayXattrPfx) {
			continue
		}
		m.xattrs = append(m.xattrs, xattr{name: name, value: []byte(v)})
	}
	return m, nil
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// dir creates (or merges into) directory base of parent; name is its path for the deferred times.
func (a *applier) dir(parent int, base, name string, hdr *tar.Header) error {
	m, err := metaFromHeader(hdr)
	if err != nil {
		return err
	}
	if name != "" {
		kept, err := a.clear(parent, base, true)
		if err != nil {
			return err
		}
		if !kept {
			if err := unix.Mkdirat(parent, base, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	if err := setOwnerModeXattrs(fd, m); err != nil {
		return err
	}
	a.dirTimes[name] = [2]unix.Timespec{m.atime, m.mtime}
	return nil
}

// regular writes a regular file from r.
func (a *applier) regular(parent int, base string, hdr *tar.Header, r io.Reader) error {
	m, err := metaFromHeader(hdr)
	if err != nil {
		return err
	}
	if _, err := a.clear(parent, base, false); err != nil {
		return err
	}
	fd, err := unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer unix.Close(fd)
	if hdr.Size > 0 {
		// An entry larger than what the image may still unpack fails at once, not after writing the part that fits.
		if err := a.limit.fits(hdr.Size); err != nil {
			return err
		}
		n, err := a.copyContents(fd, r, isSparse(hdr))
		a.size += n
		if err != nil {
			return err
		}
	}
	if err := setOwnerModeXattrs(fd, m); err != nil {
		return err
	}
	return setTimes(parent, base, m)
}

func (a *applier) symlink(parent int, base string, hdr *tar.Header) error {
	m, err := metaFromHeader(hdr)
	if err != nil {
		return err
	}
	if len(hdr.Linkname) > maxNameLen {
		return errdefs.InvalidArgument("linkname", "%d bytes long, limit %d", len(hdr.Linkname), maxNameLen)
	}
	if _, err := a.clear(parent, base, false); err != nil {
		return err
	}
	// The target is only a string: it is never followed while unpacking.
	if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return setMetaAt(parent, base, unix.S_IFLNK, m)
}

// device makes a character or block device or a fifo.
func (a *applier) device(parent int, base string, hdr *tar.Header) error {
	m, err := metaFromHeader(hdr)
	if err != nil {
		return err
	}
	if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
		return errdefs.InvalidArgument("device", "%d:%d out of range", hdr.Devmajor, hdr.Devminor)
	}
	kind := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = unix.S_IFCHR
	case tar.TypeBlock:
		kind = unix.S_IFBLK
	}
	if _, err := a.clear(parent, base, false); err != nil {
		return err
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(parent, base, kind|0o600, int(dev)); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return setMetaAt(parent, base, kind, m)
}

// whiteout turns ".wh.<name>" into overlayfs' whiteout for name and ".wh..wh..opq" into an opaque directory.
func (a *applier) whiteout(dirPath, base string) error {
	if strings.HasPrefix(base, whiteoutMeta) && base != opaqueMarker {
		return nil // other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) means nothing to overlayfs
	}
	parent, err := a.parent(dirPath)
	if err != nil {
		return err
	}
	if base == opaqueMarker {
		fd, err := unix.Openat(parent, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark opaque: %w", err)
		}
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPfx)
	if name == "" || name == "." || name == ".." {
		return errdefs.InvalidArgument("name", "whiteout %q names no file", base)
	}
	// A whiteout hides lower layers only: a file of the same name in this layer wins, whatever the order.
	var st unix.Stat_t
	switch err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); err {
	case nil:
		return nil
	case unix.ENOENT:
	default:
		return fmt.Errorf("stat %.256q: %w", name, err)
	}
	if err := unix.Mknodat(parent, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %.256q: %w", name, err)
	}
	return nil
}

// setOwnerModeXattrs sets owner, then mode (chown clears setuid and setgid), then xattrs on an open file.
func setOwnerModeXattrs(fd int, m meta) error {
	if err := unix.Fchown(fd, m.uid, m.gid); err != nil {
		return fmt.Errorf("chown %d:%d: %w", m.uid, m.gid, err)
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return fmt.Errorf("chmod %#o: %w", m.mode, err)
	}
	for _, x := range m.xattrs {
		if err := unix.Fsetxattr(fd, x.name, x.value, 0); err != nil && !ignorableXattrErr(x.name, err) {
			return fmt.Errorf("set xattr %.256q: %w", x.name, err)
		}
	}
	return nil
}

// setMetaAt sets meta on a just-made symlink, device or fifo base of parent without following it.
func setMetaAt(parent int, base string, kind uint32, m meta) error {
	if err := unix.Fchownat(parent, base, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %d:%d: %w", m.uid, m.gid, err)
	}
	if kind != unix.S_IFLNK {
		if err := chmodNoFollow(parent, base, m.mode); err != nil {
			return fmt.Errorf("chmod %#o: %w", m.mode, err)
		}
	}
	for _, x := range m.xattrs {
		if err := unix.Lsetxattr(fdPath(parent, base), x.name, x.value, 0); err != nil && !ignorableXattrErr(x.name, err) {
			return fmt.Errorf("set xattr %.256q: %w", x.name, err)
		}
	}
	return setTimes(parent, base, m)
}

// chmodNoFollow changes the mode of base, which is not a symlink, through an O_PATH fd of it: fchmodat2's
// AT_SYMLINK_NOFOLLOW needs Linux 6.6, and the magic link of an O_PATH fd leads to that very inode.
func chmodNoFollow(parent int, base string, mode uint32) error {
	fd, err := unix.Openat(parent, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fchmodat(unix.AT_FDCWD, procFD(fd), mode, 0)
}

func setTimes(parent int, base string, m meta) error {
	if err := unix.UtimesNanoAt(parent, base, []unix.Timespec{m.atime, m.mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// setDirTimes runs after the last entry: writing a directory's children changed its times.
func (a *applier) setDirTimes() error {
	i := 0
	for name, ts := range a.dirTimes {
		if i++; i%1024 == 0 {
			if err := a.ctx.Err(); err != nil {
				return err
			}
		}
		if name == "" {
			if err := unix.UtimesNanoAt(a.root, ".", ts[:], 0); err != nil {
				return fmt.Errorf("set times of layer root: %w", err)
			}
			continue
		}
		if err := a.setDirTimesAt(name, ts); err != nil {
			return fmt.Errorf("set times of %.256q: %w", name, err)
		}
	}
	return nil
}

func (a *applier) setDirTimesAt(name string, ts [2]unix.Timespec) error {
	dirPath, base := splitPath(name)
	parent := a.root
	if dirPath != "" {
		fd, err := openInRoot(a.root, dirPath)
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
			return nil // replaced by a later entry
		}
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		parent = fd
	}
	var st unix.Stat_t
	if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil // replaced by a later entry, which set its own times
	}
	return unix.UtimesNanoAt(parent, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// ignorableXattrErr: security.* and trusted.* need privileges or kernel support (SELinux, ...) that an unpacking
// host may lack; every other xattr the layer asks for must be set.
func ignorableXattrErr(name string, err error) bool {
	if err != unix.EPERM && err != unix.EOPNOTSUPP {
		return false
	}
	if strings.HasPrefix(name, "security.") || strings.HasPrefix(name, "trusted.") {
		slog.Debug("unpack layer: xattr not set", "xattr", name, "err", err)
		return true
	}
	return false
}

// fdWriter writes to a raw fd.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}
