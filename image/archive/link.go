package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// link makes name (base in parent) a hard link to hdr.Linkname. A target in this layer is linked; a target only
// in a lower layer is copied up, as overlayfs itself would on the first write to it.
func (a *applier) link(parent int, base, name string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return err
	}
	if target == "" {
		return errdefs.InvalidArgument("linkname", "%q is the layer root", hdr.Linkname)
	}
	layer, tparent, st, err := a.lookup(target)
	if err != nil {
		return fmt.Errorf("hard link to %.256q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tparent)
	src := target // the path in this layer to link to, once layer is 0
	if c, ok := a.copies[target]; ok && layer > 0 {
		// Later links to a lower file join its first copy: they shared one inode in the image.
		if cparent, cst, err := a.lookupHere(c.name); err == nil {
			defer unix.Close(cparent)
			if cst.Ino == c.ino {
				layer, tparent, src = 0, cparent, c.name
			}
		}
	}
	if layer == 0 && src == name {
		return nil // a link to itself: the file is already there
	}
	if _, err := a.clear(parent, base, false); err != nil {
		return err
	}
	_, tbase := splitPath(src)
	if layer > 0 {
		if err := a.copyUp(tparent, tbase, &st, parent, base); err != nil {
			return fmt.Errorf("copy up %.256q from %s: %w", target, a.lowers[layer-1], err)
		}
		var cst unix.Stat_t
		if err := unix.Fstatat(parent, base, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat copy of %.256q: %w", target, err)
		}
		a.copies[target] = copied{name: name, ino: cst.Ino}
		return nil
	}
	// Flags 0: a link to a symlink links the symlink itself, as tar means it.
	if err := unix.Linkat(tparent, tbase, parent, base, 0); err != nil {
		return fmt.Errorf("hard link to %.256q: %w", hdr.Linkname, err)
	}
	return nil
}

// copied records where a lower file was copied up to.
type copied struct {
	name string
	ino  uint64
}

// lookup finds p the way overlayfs would in the stack of this layer (index 0) and its lowers, without following
// any symlink: a whiteout, a non-directory or an opaque directory on the way ends the search. It returns the layer
// holding p, an fd of p's parent directory there (the caller closes it) and p's stat.
func (a *applier) lookup(p string) (layer, parent int, st unix.Stat_t, err error) {
	comps, base := splitComps(p)
	for i := 0; i <= len(a.lowers); i++ {
		root, err := a.layerRoot(i)
		if err != nil {
			return 0, -1, st, err
		}
		parent, found, stop, err := lookupIn(root, comps, base, &st)
		if err != nil {
			return 0, -1, st, err
		}
		if found {
			return i, parent, st, nil
		}
		if stop {
			break
		}
	}
	return 0, -1, st, ErrLowerNeeded
}

// lookupHere finds p in this layer only; see lookup.
func (a *applier) lookupHere(p string) (parent int, st unix.Stat_t, err error) {
	comps, base := splitComps(p)
	parent, found, _, err := lookupIn(a.root, comps, base, &st)
	if err == nil && !found {
		err = unix.ENOENT
	}
	return parent, st, err
}

func splitComps(p string) (dirs []string, base string) {
	dirPath, base := splitPath(p)
	if dirPath == "" {
		return nil, base
	}
	return strings.Split(dirPath, "/"), base
}

func (a *applier) layerRoot(i int) (int, error) {
	if i == 0 {
		return a.root, nil
	}
	if a.lowerFDs[i-1] < 0 {
		fd, err := unix.Open(a.lowers[i-1], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("open lower layer %s: %w", a.lowers[i-1], err)
		}
		a.lowerFDs[i-1] = fd
	}
	return a.lowerFDs[i-1], nil
}

// lookupIn looks for comps/base below the layer root. found: parent is an fd of its directory and st is filled.
// stop: it is hidden from the layers below (whiteout, non-directory on the way, opaque directory).
func lookupIn(root int, comps []string, base string, st *unix.Stat_t) (parent int, found, stop bool, err error) {
	cur, err := unix.FcntlInt(uintptr(root), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, false, false, err
	}
	opaque := false
	for _, c := range comps {
		fd, err := unix.Openat(cur, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		switch err {
		case nil:
		case unix.ENOENT:
			return -1, false, opaque, nil
		case unix.ENOTDIR, unix.ELOOP:
			return -1, false, true, nil
		default:
			return -1, false, false, fmt.Errorf("open %.256q: %w", c, err)
		}
		cur = fd
		opaque = opaque || isOpaque(fd)
	}
	if err := unix.Fstatat(cur, base, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Close(cur)
		if err == unix.ENOENT {
			return -1, false, opaque, nil
		}
		return -1, false, false, fmt.Errorf("stat %.256q: %w", base, err)
	}
	switch {
	case isWhiteout(st):
		unix.Close(cur)
		return -1, false, true, nil
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		unix.Close(cur)
		return -1, false, false, errdefs.InvalidArgument("linkname", "%.256q is a directory", base)
	}
	return cur, true, false, nil
}

func isOpaque(fd int) bool {
	var v [1]byte
	n, err := unix.Fgetxattr(fd, opaqueXattr, v[:])
	return err == nil && n == 1 && v[0] == 'y'
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// copyUp copies file sbase of lower directory src, with its owner, mode, times and xattrs, to dbase of dst.
func (a *applier) copyUp(src int, sbase string, st *unix.Stat_t, dst int, dbase string) error {
	xattrs, err := readXattrs(fdPath(src, sbase))
	if err != nil {
		return err
	}
	m := meta{uid: int(st.Uid), gid: int(st.Gid), mode: st.Mode & 0o7777, atime: st.Atim, mtime: st.Mtim, xattrs: xattrs}
	kind := st.Mode & unix.S_IFMT
	switch kind {
	case unix.S_IFREG:
		return a.copyFile(src, sbase, dst, dbase, st, m)
	case unix.S_IFLNK:
		target := make([]byte, maxNameLen+1)
		n, err := unix.Readlinkat(src, sbase, target)
		if err != nil {
			return fmt.Errorf("readlink: %w", err)
		}
		if err := unix.Symlinkat(string(target[:n]), dst, dbase); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	default:
		if err := unix.Mknodat(dst, dbase, kind|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	}
	return setMetaAt(dst, dbase, kind, m)
}

func (a *applier) copyFile(src int, sbase string, dst int, dbase string, st *unix.Stat_t, m meta) error {
	sfd, err := unix.Openat(src, sbase, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	in := os.NewFile(uintptr(sfd), sbase)
	defer in.Close()
	dfd, err := unix.Openat(dst, dbase, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	out := os.NewFile(uintptr(dfd), dbase)
	defer out.Close()
	if err := a.take(st.Size); err != nil {
		return err
	}
	// os.File copies with copy_file_range (a reflink on filesystems that share extents) and falls back by itself.
	n, err := io.Copy(out, in)
	a.size += n
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := setOwnerModeXattrs(dfd, m); err != nil {
		return err
	}
	return setTimes(dst, dbase, m)
}

// readXattrs reads the xattrs of path (not following it), leaving out overlayfs' own.
func readXattrs(path string) ([]xattr, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		if err == unix.EOPNOTSUPP {
			err = nil
		}
		return nil, err
	}
	names := make([]byte, size)
	if size, err = unix.Llistxattr(path, names); err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var out []xattr
	for name := range bytes.SplitSeq(names[:size], []byte{0}) {
		if len(name) == 0 || bytes.HasPrefix(name, []byte(overlayXattrPfx)) {
			continue
		}
		n, err := unix.Lgetxattr(path, string(name), nil)
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", name, err)
		}
		value := make([]byte, n)
		if n, err = unix.Lgetxattr(path, string(name), value); err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", name, err)
		}
		out = append(out, xattr{name: string(name), value: value[:n]})
	}
	return out, nil
}
