package archive

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// resolveFlags confine every symlink met while resolving a parent directory to dir, as a chroot would, and refuse
// /proc magic links and mount crossings.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// cleanPath makes p relative to the root with no ".", ".." or empty components ("" is the root itself).
func cleanPath(p string) string {
	return path.Clean("/" + p)[1:]
}

// fdPath names base in the directory open as fd, for the few calls that exist only on paths (l*xattr).
// The kernel jumps straight to fd's directory; base itself is not followed by the l* calls.
func fdPath(fd int, base string) string {
	return procFD(fd) + "/" + base
}

// procFD names the file open as fd; opening or chmodding it reaches that very inode, never a symlink's target.
func procFD(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// parent returns an fd of directory p (relative to dir), creating missing directories 0755. The fd stays owned by
// the applier and valid until the next call.
func (a *applier) parent(p string) (int, error) {
	if p == "" {
		return a.root, nil
	}
	if a.parentFD >= 0 {
		if !a.stale && a.parentPath == p {
			return a.parentFD, nil
		}
		unix.Close(a.parentFD)
		a.parentFD = -1
	}
	fd, err := openInRoot(a.root, p)
	if errors.Is(err, unix.ENOENT) {
		fd, err = a.mkdirAll(p)
	}
	if err != nil {
		return -1, fmt.Errorf("parent directory %.256q: %w", p, err)
	}
	a.parentPath, a.parentFD, a.stale = p, fd, false
	return fd, nil
}

// openInRoot opens directory p below root as O_PATH, following symlinks confined to root.
func openInRoot(root int, p string) (int, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags}
	for range 16 {
		fd, err := unix.Openat2(root, p, &how)
		// EAGAIN: a concurrent rename or mount somewhere on the host made the kernel give up; try again.
		if err != unix.EAGAIN {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// mkdirAll creates the missing directories of p one component at a time, each resolved afresh from the root so
// that symlinks stay confined, and returns an fd of p.
func (a *applier) mkdirAll(p string) (int, error) {
	cur := a.root
	closeCur := func() {
		if cur != a.root {
			unix.Close(cur)
		}
	}
	defer func() { closeCur() }()
	created := false // below a directory just made, nothing exists yet
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		fd, err := -1, error(unix.ENOENT)
		if !created {
			fd, err = openInRoot(a.root, p[:i])
		}
		if errors.Is(err, unix.ENOENT) {
			created = true
			_, base := splitPath(p[:i])
			fd, err = mkdirAt(cur, base)
			if errors.Is(err, unix.EEXIST) {
				return -1, fmt.Errorf("%.256q is a dangling symlink once confined to the layer: %w", p[:i], err)
			}
		}
		if err != nil {
			return -1, err
		}
		closeCur()
		cur = fd
	}
	fd := cur
	cur = a.root // keep the result open
	return fd, nil
}

// mkdirAt creates directory base in parent with mode 0755 whatever the umask, and returns an fd of it.
func mkdirAt(parent int, base string) (int, error) {
	if err := unix.Mkdirat(parent, base, 0o700); err != nil {
		return -1, err
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Fchmod(fd, 0o755); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// clear makes room for a new entry named base in parent: it removes what is there unless both are directories,
// in which case the new one merges into the old. It reports whether a directory is kept.
func (a *applier) clear(parent int, base string, wantDir bool) (keptDir bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, fmt.Errorf("stat %.256q: %w", base, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if wantDir {
			return true, nil
		}
		if err := removeAllAt(parent, base); err != nil {
			return false, err
		}
		a.stale = true
	case unix.S_IFLNK:
		a.stale = true
		fallthrough
	default:
		if err := unix.Unlinkat(parent, base, 0); err != nil {
			return false, fmt.Errorf("remove %.256q: %w", base, err)
		}
	}
	return false, nil
}

// removeAllAt removes directory base of parent and its contents without following any symlink.
func removeAllAt(parent int, base string) error {
	r, err := os.OpenRoot(procFD(parent))
	if err != nil {
		return err
	}
	defer r.Close()
	return r.RemoveAll(base)
}
