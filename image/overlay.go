package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/kernel"
)

// overlay is an overlayfs mount to make: lowers top-most first, under upper and work for a writable one.
type overlay struct {
	lowers      []string
	upper, work string
	// idmap idmaps every lower layer into a user namespace.
	idmap    *IDMap
	readOnly bool
	// volatile mounts the overlay with overlayfs's volatile option (Linux 5.10): no sync of the upper dir's
	// filesystem at unmount, nor on the container's fsyncs. For a container's writable layer, which outlives no
	// restart of its container and is never mounted twice (so the kernel's refusal to remount a volatile upper dir
	// after a crash never applies), see Options.SyncWritableLayers.
	volatile bool
}

// overlayAppend is kernel.OverlayAppend; tests replace it to take the mount(2) path on any kernel.
var overlayAppend = kernel.OverlayAppend

// mountOverlay mounts o at target. Where overlayfs takes "lowerdir+" (Linux 6.8) the layers are added one by one
// through the new mount API, so no image is too deep and idmapped layers are detached mounts that nobody else sees.
// Older kernels get mount(2) with one option string (see mountOverlayLegacy); idmapped layers are refused there,
// and user namespaces are advertised off (cri/userns.go).
func mountOverlay(o overlay, target string) error {
	if err := overlayAppend(); err != nil {
		if o.idmap != nil {
			return errdefs.FailedPrecondition("idmapped image layers need %v", err)
		}
		return mountOverlayLegacy(o, target)
	}
	mfd, err := fsmountOverlay(o)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount at %s: %w", target, err)
	}
	return nil
}

// fsmountOverlay makes o as a detached mount and returns its fd. With an idmap each lower dir is added as a
// detached idmapped clone of it.
func fsmountOverlay(o overlay) (int, error) {
	userns := -1
	if o.idmap != nil {
		fd, err := unix.Open(o.idmap.UserNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
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
	for _, l := range o.lowers {
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
	if o.upper != "" {
		if err := errors.Join(set("upperdir", o.upper), set("workdir", o.work)); err != nil {
			return -1, err
		}
	}
	if o.volatile {
		if err := unix.FsconfigSetFlag(fd, "volatile"); err != nil {
			return -1, fmt.Errorf("overlay option volatile: %w", err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return -1, fmt.Errorf("create overlay: %w", err)
	}
	attrs := 0
	if o.readOnly {
		attrs = unix.MOUNT_ATTR_RDONLY
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

// mountOverlayLegacy mounts o at target with mount(2), whose option string holds at most one page (fsconfig's
// "lowerdir" string only 256 bytes). With absolute paths that is about 40 layers. When they do not fit, or a path
// holds a character the option string gives a meaning (',' ':' '\'), every dir is named by an O_PATH descriptor
// relative to /proc/self/fd ("12:13:…", as few as 3 bytes a layer: deeper than overlayfs stacks). containerd
// shortens paths the same way relative to a common dir; descriptors also cover dirs that share none.
func mountOverlayLegacy(o overlay, target string) error {
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	var flags uintptr
	if o.readOnly {
		flags = unix.MS_RDONLY
	}
	if opts, ok := overlayOptions(o.lowers, o.upper, o.work, o.volatile); ok {
		err := unix.Mount("overlay", target, "overlay", flags, opts)
		if errors.Is(err, unix.EINVAL) && o.volatile { // Linux before 5.10 has no volatile
			opts, _ = overlayOptions(o.lowers, o.upper, o.work, false)
			err = unix.Mount("overlay", target, "overlay", flags, opts)
		}
		if err != nil {
			return fmt.Errorf("mount overlay at %s (%d layers): %w", target, len(o.lowers), err)
		}
		return nil
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	name := func(dir string) (string, error) {
		if dir == "" {
			return "", nil
		}
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("open layer dir: %w", err)
		}
		fds = append(fds, fd)
		return strconv.Itoa(fd), nil
	}
	lowers := make([]string, len(o.lowers))
	for i, l := range o.lowers {
		if lowers[i], err = name(l); err != nil {
			return err
		}
	}
	upper, err := name(o.upper)
	if err != nil {
		return err
	}
	work, err := name(o.work)
	if err != nil {
		return err
	}
	opts, ok := overlayOptions(lowers, upper, work, o.volatile)
	if !ok {
		return fmt.Errorf("mount overlay: %d layers do not fit in one page of mount options", len(o.lowers))
	}
	err = mountIn("/proc/self/fd", "overlay", target, "overlay", flags, opts)
	if errors.Is(err, unix.EINVAL) && o.volatile {
		opts, _ = overlayOptions(lowers, upper, work, false)
		err = mountIn("/proc/self/fd", "overlay", target, "overlay", flags, opts)
	}
	if err != nil {
		return fmt.Errorf("mount overlay at %s (%d layers, by descriptor): %w", target, len(o.lowers), err)
	}
	return nil
}

// overlayOptions is mount(2)'s option string for an overlay of lowers under upper and work (none for a read-only
// overlay) and volatile; false when it is longer than a page or a path holds a separator.
func overlayOptions(lowers []string, upper, work string, volatile bool) (string, bool) {
	var b strings.Builder
	b.WriteString("lowerdir=")
	b.WriteString(strings.Join(lowers, ":"))
	if upper != "" {
		b.WriteString(",upperdir=" + upper + ",workdir=" + work)
	}
	if volatile {
		b.WriteString(",volatile")
	}
	for _, p := range append([]string{upper, work}, lowers...) {
		if strings.ContainsAny(p, ",:\\") {
			return "", false
		}
	}
	return b.String(), b.Len() < os.Getpagesize() // the kernel copies one page, NUL included
}

// mountIn runs mount(2) with dir as the working directory, so relative paths in data resolve below it. The
// working directory is the whole process's: the mount runs on a thread of its own that unshares it (CLONE_FS) and
// is never handed back to Go (a locked thread that exits is destroyed), as containerd does.
func mountIn(dir, source, target, fstype string, flags uintptr, data string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: this thread's fs state is no longer the process's
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		errc <- unix.Mount(source, target, fstype, flags, data)
	}()
	return <-errc
}
