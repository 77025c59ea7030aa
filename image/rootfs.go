package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MountRootfs mounts a container's root filesystem at target: img's layers as overlayfs lower dirs under the
// writable upper dir (upper and work are made when missing, on the same filesystem). It uses the new mount API and
// adds one "lowerdir+" per layer, so deep images never hit the one-page limit of mount(2)'s option string.
func (s *Service) MountRootfs(img Image, upper, work, target string) error {
	lowers := s.LowerDirs(img)
	if len(lowers) == 0 {
		// An image without layers (FROM scratch with nothing added): overlayfs needs one lower dir.
		empty := filepath.Join(s.snapshots, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		lowers = []string{empty}
	}
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("rootfs: fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fd, key, value); err != nil {
			return fmt.Errorf("rootfs: overlay option %s=%s: %w", key, value, err)
		}
		return nil
	}
	for _, l := range lowers {
		if err := set("lowerdir+", l); err != nil {
			return err
		}
	}
	if err := errors.Join(set("upperdir", upper), set("workdir", work)); err != nil {
		return err
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("rootfs: create overlay at %s: %w", target, err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("rootfs: fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("rootfs: mount at %s: %w", target, err)
	}
	return nil
}

// UnmountRootfs unmounts target if something is mounted there. It is idempotent.
func UnmountRootfs(target string) error {
	for {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue // a mount may be stacked twice after a crash between mount and record
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("rootfs: detach %s: %w", target, err)
			}
			return nil
		default:
			return fmt.Errorf("rootfs: unmount %s: %w", target, err)
		}
	}
}
