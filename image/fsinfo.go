package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/berthcri/berth/internal/diskusage"
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
	var c diskusage.Counter
	for _, dir := range []string{"content", "snapshots", "images"} {
		if err := c.Add(ctx, filepath.Join(s.root, dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return FsUsage{}, fmt.Errorf("image filesystem usage: %w", err)
		}
	}
	u.UsedBytes, u.InodesUsed = c.Bytes, c.Inodes
	return u, nil
}
