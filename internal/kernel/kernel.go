// Package kernel probes the kernel features berth uses beyond its minimum kernel (Linux 5.10), each once, on first
// use. Callers decide what to do without a feature: fall back to something as safe, advertise the feature off, or
// refuse. README.md keeps the table of features, kernels and fallbacks; Features lists the same for the start-up log.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// MinimumRelease is the oldest kernel berth is tested on (Debian 11's); Required's features are older still.
const MinimumRelease = "5.10"

// Feature is one probed kernel feature.
type Feature struct {
	Name string
	// Since is the first Linux release that has it.
	Since string
	// Err says why the kernel lacks it; nil when it has it.
	Err error
}

// Features probes every feature berth looks for, for the start-up log and berthd's verbose Status.
func Features() []Feature {
	return []Feature{
		{"openat2 RESOLVE_IN_ROOT", "5.6", Openat2()},
		{"pidfd_open, pidfd_send_signal", "5.3", Pidfd()},
		{"mount_setattr (recursive read-only mounts, idmapped mounts)", "5.12", MountSetattr()},
		{"overlayfs lowerdir+ (fsconfig layer by layer, idmapped layers)", "6.8", OverlayAppend()},
	}
}

// Required says why berth cannot run on this kernel: a feature it has no safe way to do without is missing.
func Required() error {
	var errs []error
	for _, f := range []Feature{{"openat2 RESOLVE_IN_ROOT", "5.6", Openat2()}, {"pidfd", "5.3", Pidfd()}} {
		if f.Err != nil {
			errs = append(errs, fmt.Errorf("kernel lacks %s (Linux %s; berth needs Linux %s or later): %w", f.Name, f.Since, MinimumRelease, f.Err))
		}
	}
	return errors.Join(errs...)
}

// Release is the running kernel's release, as uname -r prints it.
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Openat2 says whether openat2(2) resolves paths with RESOLVE_IN_ROOT (Linux 5.6). Image unpacking and image volume
// sub paths resolve untrusted paths with it; without it they would have to resolve by hand, which races: berth
// refuses to run instead.
var Openat2 = sync.OnceValue(func() error {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return fmt.Errorf("openat2: %w", err)
	}
	unix.Close(fd)
	return nil
})

// Pidfd says whether the kernel has pidfd_open (5.3) and pidfd_send_signal (5.1): the monitor signals container
// processes through pidfds so that a reused pid is never signalled.
var Pidfd = sync.OnceValue(func() error {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
		return fmt.Errorf("pidfd_send_signal: %w", err)
	}
	return nil
})

// MountSetattr says whether the kernel has mount_setattr(2) (Linux 5.12), which recursive read-only mounts and
// idmapped mounts need. An invalid call tells it apart: EINVAL (or EBADF) when it exists, ENOSYS when it does not.
var MountSetattr = sync.OnceValue(func() error {
	if err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{}); errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
})

// OverlayAppend says whether overlayfs takes its lower layers one fsconfig(2) call at a time ("lowerdir+", Linux
// 6.8), also as file descriptors of detached (idmapped) mounts. Older kernels take only one "lowerdir" string, from
// mount(2) (one page) or fsconfig (256 bytes). The probe builds, and drops, an overlay of two empty dirs.
var OverlayAppend = sync.OnceValue(func() error {
	dir, err := os.MkdirTemp("", "berth-overlay-probe-")
	if err != nil {
		return fmt.Errorf("probe overlayfs: %w", err)
	}
	defer os.RemoveAll(dir)
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	for _, l := range []string{"a", "b"} {
		p := filepath.Join(dir, l)
		if err := os.Mkdir(p, 0o700); err != nil {
			return fmt.Errorf("probe overlayfs: %w", err)
		}
		if err := unix.FsconfigSetString(fd, "lowerdir+", p); err != nil {
			return fmt.Errorf("overlayfs lowerdir+: %w", err)
		}
	}
	// Before 6.5 overlayfs parsed options only at create time: an unknown key fails here.
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("overlayfs lowerdir+: %w", err)
	}
	return nil
})
