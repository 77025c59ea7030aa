// Package diskusage measures what file trees take on disk, as du does.
package diskusage

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Usage is allocated bytes and inodes.
type Usage struct{ Bytes, Inodes uint64 }

// Counter adds up the trees it measures, counting a file with several hard links once across all of them.
type Counter struct {
	Usage
	seen map[[2]uint64]bool
}

// Add measures dir into c. Files removed while it walks are skipped; a missing dir is an error wrapping
// fs.ErrNotExist. The walk stops when ctx ends.
func (c *Counter) Add(ctx context.Context, dir string) error {
	if c.seen == nil {
		c.seen = map[[2]uint64]bool{}
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err == nil {
			err = ctx.Err()
		}
		var st unix.Stat_t
		if err == nil {
			err = unix.Lstat(path, &st)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist) && path != dir:
			return nil // removed while we walk
		case err != nil:
			return err
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			key := [2]uint64{st.Dev, st.Ino}
			if c.seen[key] {
				return nil
			}
			c.seen[key] = true
		}
		c.Bytes += uint64(st.Blocks) * 512
		c.Inodes++
		return nil
	})
}
