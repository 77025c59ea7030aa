package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// IDMap maps an image's files into a user namespace (a pod's, KEP-127): its layers are mounted idmapped, so a file
// the image gives to root belongs to the user namespace's root.
type IDMap struct {
	// UserNS is the user namespace's file: /proc/<pid>/ns/user or a bind mount of one.
	UserNS string
	// UID and GID are the host ids the user namespace maps its root to. A writable upper dir is given to them:
	// it is not idmapped, so what the container writes lands on disk under the host ids it runs as.
	UID, GID int
}

// MountRootfs mounts a container's root filesystem at target: img's layers as overlayfs lower dirs under the
// writable upper dir (upper and work are made when missing, on the same filesystem). It uses the new mount API and
// adds one "lowerdir+" per layer, so deep images never hit the one-page limit of mount(2)'s option string.
func (s *Service) MountRootfs(img Image, upper, work, target string) error {
	return s.MountRootfsMapped(img, upper, work, target, nil)
}

// MountRootfsMapped is MountRootfs for a container in a user namespace: with idmap set, the layers are idmapped
// into it and the upper dir belongs to its root. nil is MountRootfs.
func (s *Service) MountRootfsMapped(img Image, upper, work, target string, idmap *IDMap) error {
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	if idmap != nil {
		if err := os.Chown(upper, idmap.UID, idmap.GID); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	lowers, err := s.lowers(img, 1)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	mfd, err := mountOverlay(lowers, upper, work, idmap, 0)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("rootfs: mount at %s: %w", target, err)
	}
	return nil
}

// MountReadOnly mounts img's filesystem read-only at target, an image volume (KEP-4639): all of it, or only subPath,
// a path inside the image resolved without leaving it (a symlink to "/" is the image's root). A subPath the image
// lacks is an error wrapping errdefs.ErrNotFound. target is made (a directory, or an empty file when subPath names
// a file). With idmap the layers are idmapped into that user namespace.
func (s *Service) MountReadOnly(img Image, subPath, target string, idmap *IDMap) error {
	lowers, err := s.lowers(img, 2) // overlayfs without an upper dir wants two lower dirs
	if err != nil {
		return fmt.Errorf("image volume: %w", err)
	}
	mfd, err := mountOverlay(lowers, "", "", idmap, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return fmt.Errorf("image volume: %w", err)
	}
	defer unix.Close(mfd)
	tree := mfd
	if subPath != "" {
		// The overlay is not attached anywhere: the sub path is resolved inside it and only that subtree is mounted.
		sub, err := unix.Openat2(mfd, subPath, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("image volume: path %q in image %s: %w", subPath, img.ID, errdefs.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("image volume: open %q in image %s: %w", subPath, img.ID, err)
		}
		defer unix.Close(sub)
		if tree, err = unix.OpenTree(sub, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("image volume: clone %q of image %s: %w", subPath, img.ID, err)
		}
		defer unix.Close(tree)
	}
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("image volume: %w", err)
	}
	if err := makeTarget(target, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
		return fmt.Errorf("image volume: %w", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("image volume: mount at %s: %w", target, err)
	}
	return nil
}

func makeTarget(target string, dir bool) error {
	if dir {
		return os.MkdirAll(target, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// lowers returns img's layer dirs for overlayfs, top-most first, padded with an empty dir to at least n.
func (s *Service) lowers(img Image, n int) ([]string, error) {
	lowers := s.LowerDirs(img)
	if len(lowers) < n {
		// An image without layers (FROM scratch with nothing added), or a read-only mount of a one-layer image.
		empty := filepath.Join(s.snapshots, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return nil, err
		}
		for len(lowers) < n {
			lowers = append(lowers, empty)
		}
	}
	return lowers, nil
}

// mountOverlay makes a detached overlayfs mount and returns its fd: lowers (top-most first) under upper and work,
// or read-only without them; attrs are MOUNT_ATTR_* flags. With idmap each lower dir is added as a detached
// idmapped clone of it.
func mountOverlay(lowers []string, upper, work string, idmap *IDMap, attrs int) (int, error) {
	userns := -1
	if idmap != nil {
		fd, err := unix.Open(idmap.UserNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("open user namespace: %w", err)
		}
		defer unix.Close(fd)
		userns = fd
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fd, key, value); err != nil {
			return fmt.Errorf("overlay option %s=%s: %w", key, value, err)
		}
		return nil
	}
	for _, l := range lowers {
		if userns < 0 {
			if err := set("lowerdir+", l); err != nil {
				return -1, err
			}
			continue
		}
		tree, err := addMappedLower(fd, l, userns)
		if err != nil {
			return -1, err
		}
		// Closing a detached mount's last fd dissolves it: keep it until the overlay has cloned it.
		defer unix.Close(tree)
	}
	if upper != "" {
		if err := errors.Join(set("upperdir", upper), set("workdir", work)); err != nil {
			return -1, err
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return -1, fmt.Errorf("create overlay: %w", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", err)
	}
	return mfd, nil
}

// addMappedLower adds dir to the overlay being configured on fd as an idmapped lower layer and returns the fd of
// that layer's detached idmapped mount, to be closed once the overlay is made. overlayfs cannot be idmapped itself
// (since 5.19 it takes idmapped layers instead).
func addMappedLower(fd int, dir string, userns int) (int, error) {
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("clone layer %s: %w", dir, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(tree)
		return -1, fmt.Errorf("idmap layer %s: %w", dir, err)
	}
	if err := unix.FsconfigSetFd(fd, "lowerdir+", tree); err != nil {
		unix.Close(tree)
		return -1, fmt.Errorf("overlay option lowerdir+ (idmapped %s): %w", dir, err)
	}
	return tree, nil
}

// UnmountRootfs unmounts target, a rootfs or an image volume, if something is mounted there. It is idempotent.
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
