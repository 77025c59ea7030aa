// Package privdir makes berth's own directories: owned by berth's user, mode 0700, or 0710 with one group allowed to
// traverse them (a user-namespaced pod's mapped root on its way to its rootfs). A directory is made 0700 whatever
// the umask and only then given its group and mode through a descriptor, so it is never wider than asked for, and
// an existing one (from an older berth: 0711, 0755) is tightened to exactly that.
package privdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Private is the gid argument for a directory no group may traverse (mode 0700).
const Private = -1

// Mode is the mode of a dir made for gid: 0700, or 0710 when a group may traverse it.
func Mode(gid int) fs.FileMode {
	if gid == Private {
		return 0o700
	}
	return 0o710
}

// Make makes dir, and each missing parent, with Mode(gid) and group gid (Private: berth's own group), and sets an
// existing dir to them. Existing parents are left alone: they may be the host's (/var/lib, /run).
func Make(dir string, gid int) error {
	if err := mkdirAll(dir, gid); err != nil {
		return err
	}
	return set(dir, gid)
}

func mkdirAll(dir string, gid int) error {
	st, err := os.Lstat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s: not a directory (%v)", dir, st.Mode().Type())
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(parent, gid); err != nil {
			return err
		}
	}
	if err := Mkdir(dir, gid); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// Mkdir makes dir with Mode(gid) and group gid; its parent must exist. An existing dir is an error wrapping
// fs.ErrExist. It is made 0700 (a umask can only narrow that) and then given its group and mode.
func Mkdir(dir string, gid int) error {
	if err := unix.Mkdir(dir, 0o700); err != nil {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	return set(dir, gid)
}

// set gives dir, which must be a directory and not a symlink, berth's owner, group gid and Mode(gid), through a
// descriptor: a dir renamed or replaced meanwhile is not followed.
func set(dir string, gid int) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	group := gid
	if gid == Private {
		group = os.Getegid()
	}
	// The group first: a 0710 mode must not reach the dir while it still has another group.
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return &fs.PathError{Op: "chmod", Path: dir, Err: err}
	}
	if err := unix.Fchown(fd, os.Geteuid(), group); err != nil {
		return &fs.PathError{Op: "chown", Path: dir, Err: err}
	}
	if err := unix.Fchmod(fd, uint32(Mode(gid))); err != nil {
		return &fs.PathError{Op: "chmod", Path: dir, Err: err}
	}
	return nil
}
