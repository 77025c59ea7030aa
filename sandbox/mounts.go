package sandbox

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/privdir"
)

const shmSize = 64 << 20 // /dev/shm size of Docker, containerd and CRI-O

// makeShared makes dir a mount point with shared propagation. Pod namespace files and shm mounts live below
// it: when a container holds a copy of them (a hostPath covering the state dir), their unmount then
// propagates into that copy instead of pinning a removed pod's namespaces (containerd does the same for
// its netns dir). Safe to repeat; the bind mount outlives berthd on purpose.
func makeShared(dir string) error {
	err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err = unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s on itself: %w", dir, err)
		}
		err = unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// mountShm mounts the pod's /dev/shm tmpfs on dir. Its mode=1777 is for the pod: host users cannot reach it through
// the pod dir, private (0710 to a user-namespaced pod's root).
func mountShm(dir string) error {
	if err := privdir.Make(dir, privdir.Private); err != nil {
		return err
	}
	data := fmt.Sprintf("mode=1777,size=%d", shmSize)
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		return fmt.Errorf("mount shm tmpfs on %s: %w", dir, err)
	}
	return nil
}

// unmountAll removes every mount stacked on path; a path that is missing or not a mount point is fine.
// MNT_DETACH: a container that still holds the mount must not make the pod unremovable.
func unmountAll(path string) error {
	for {
		err := unix.Unmount(path, unix.MNT_DETACH)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return &os.PathError{Op: "unmount", Path: path, Err: err}
		}
	}
}

// removeTree unmounts whatever is still mounted under dir (deepest first), then deletes dir. Unmounting
// first keeps RemoveAll from descending into a mount, say a container rootfs left behind by a crash.
func removeTree(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("list mounts under %s: %w", dir, err)
	}
	slices.SortFunc(mounts, func(a, b *mountinfo.Info) int { return len(b.Mountpoint) - len(a.Mountpoint) })
	for _, m := range mounts {
		if err := unmountAll(m.Mountpoint); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}
