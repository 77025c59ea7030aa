package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// FsUsage is what the image filesystem uses.
type FsUsage struct {
	// Mountpoint is the image store's root dir (on the filesystem whose capacity applies).
	Mountpoint string
	// UsedBytes and InodesUsed count blobs, unpacked layers and image records as allocated on disk; a file
	// hard-linked several times counts once.
	UsedBytes  uint64
	InodesUsed uint64
	Timestamp  time.Time
}

// FsInfo measures the image store by walking it, as du would.
func (s *Service) FsInfo(ctx context.Context) (FsUsage, error) {
	u := FsUsage{Mountpoint: s.root, Timestamp: time.Now()}
	seen := map[[2]uint64]bool{}
	for _, dir := range []string{"content", "snapshots", "images"} {
		err := filepath.WalkDir(filepath.Join(s.root, dir), func(path string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = ctx.Err()
			}
			var st unix.Stat_t
			if err == nil {
				err = unix.Lstat(path, &st)
			}
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil // removed while we walk
			case err != nil:
				return err
			}
			if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				key := [2]uint64{st.Dev, st.Ino}
				if seen[key] {
					return nil
				}
				seen[key] = true
			}
			u.UsedBytes += uint64(st.Blocks) * 512
			u.InodesUsed++
			return nil
		})
		if err != nil {
			return FsUsage{}, fmt.Errorf("image filesystem usage: %w", err)
		}
	}
	return u, nil
}
