package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
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

// dirGID is the group of the dirs made on the way to a mount target: 0710 to the user namespace's root, which is no
// one on the host yet runc's container init finds the rootfs and volumes there; private without one.
func (m *IDMap) dirGID() int {
	if m == nil {
		return privdir.Private
	}
	return m.GID
}

// MountRootfs mounts a container's root filesystem at target: img's layers as overlayfs lower dirs under the
// writable upper dir (upper and work are made when missing, on the same filesystem).
func (s *Service) MountRootfs(img Image, upper, work, target string) error {
	return s.MountRootfsMapped(img, upper, work, target, nil)
}

// MountRootfsMapped is MountRootfs for a container in a user namespace: with idmap set, the layers are idmapped
// into it and the upper dir belongs to its root. nil is MountRootfs.
func (s *Service) MountRootfsMapped(img Image, upper, work, target string, idmap *IDMap) error {
	if err := makeLayerDirs(upper, work); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := privdir.Make(target, idmap.dirGID()); err != nil {
		return fmt.Errorf("rootfs: %w", err)
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
	o := overlay{lowers: lowers, upper: upper, work: work, idmap: idmap, volatile: !s.syncLayers}
	if err := mountOverlay(o, target); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	return nil
}

// makeLayerDirs makes a writable layer's dirs, private on the way to them. upper is 0755: it is the container's "/".
func makeLayerDirs(upper, work string) error {
	for _, d := range []string{filepath.Dir(upper), filepath.Dir(work), work} {
		if err := privdir.Make(d, privdir.Private); err != nil {
			return err
		}
	}
	if err := os.Mkdir(upper, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Chmod(upper, 0o755) // whatever the umask
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
	o := overlay{lowers: lowers, idmap: idmap, readOnly: true}
	if subPath == "" {
		if err := makeTarget(target, true, idmap.dirGID()); err != nil {
			return fmt.Errorf("image volume: %w", err)
		}
		if err := mountOverlay(o, target); err != nil {
			return fmt.Errorf("image volume: %w", err)
		}
		return nil
	}
	if err := mountSubPath(o, img.ID, subPath, target, idmap.dirGID()); err != nil {
		return fmt.Errorf("image volume: %w", err)
	}
	return nil
}

// mountSubPath mounts subPath of overlay o at target. The overlay is mounted on a staging dir beside target (in
// berth's private dirs), the sub path resolved inside it, only that subtree cloned and moved to target, and the
// staging mount detached. (Cloning from an overlay that is not attached anywhere would save the staging mount, but
// Linux before 6.15 refuses to clone from a detached mount, with EINVAL.) Dirs made on the way are 0710 to gid.
func mountSubPath(o overlay, imageID, subPath, target string, gid int) error {
	if err := privdir.Make(filepath.Dir(target), gid); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(filepath.Dir(target), ".staging-")
	if err != nil {
		return err
	}
	defer os.Remove(staging)
	if err := mountOverlay(o, staging); err != nil {
		return err
	}
	defer unix.Unmount(staging, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	root, err := unix.Open(staging, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	sub, err := unix.Openat2(root, subPath, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("path %q in image %s: %w", subPath, imageID, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("open %q in image %s: %w", subPath, imageID, err)
	}
	defer unix.Close(sub)
	tree, err := unix.OpenTree(sub, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("clone %q of image %s: %w", subPath, imageID, err)
	}
	defer unix.Close(tree)
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return err
	}
	if err := makeTarget(target, st.Mode&unix.S_IFMT == unix.S_IFDIR, gid); err != nil {
		return err
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount at %s: %w", target, err)
	}
	return nil
}

// makeTarget makes a mount point, a dir or an empty file, and the dirs on the way 0710 to gid.
func makeTarget(target string, dir bool, gid int) error {
	if dir {
		return privdir.Make(target, gid)
	}
	if err := privdir.Make(filepath.Dir(target), gid); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o600)
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
