package ociruntime

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// unifiedMount is where hybrid hosts mount the cgroup v2 hierarchy beside the v1 controllers.
const unifiedMount = "/sys/fs/cgroup/unified"

var hideOnce = sync.OnceValue(hideHybridV2)

// hideHybridV2 hides, from this thread on and for the binaries it starts, the controllers of a hybrid host's cgroup
// v2 hierarchy (e.g. hugetlb, left to v2 when no v1 hierarchy mounts it): crun refuses such a host ("cgroups in
// hybrid mode not supported") although it uses only the v1 controllers there, as libcontainer does. The thread gets
// a mount namespace of its own in which the v2 mount stops propagating and an empty file covers its
// cgroup.controllers: the host's mounts are not touched, and every other mount keeps its propagation (the
// container's volumes with it). The calling goroutine stays locked to the thread, and the helper starts the binary
// from it only (one goroutine runs the helper's operation).
func hideHybridV2() error {
	if cgroups.IsCgroup2UnifiedMode() {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(unifiedMount, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil // pure v1
	}
	controllers := unifiedMount + "/cgroup.controllers"
	b, err := os.ReadFile(controllers)
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return nil
	}
	empty, err := os.CreateTemp("", "berth-empty-")
	if err != nil {
		return fmt.Errorf("hide the cgroup v2 controllers of a hybrid host: %w", err)
	}
	empty.Close()
	defer os.Remove(empty.Name()) // the bind mount keeps the inode
	runtime.LockOSThread()        // never unlocked: the thread ends with the helper
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("hide the cgroup v2 controllers of a hybrid host: unshare: %w", err)
	}
	err = errors.Join(
		unix.Mount("", unifiedMount, "", unix.MS_PRIVATE, ""),
		unix.Mount(empty.Name(), controllers, "", unix.MS_BIND, ""))
	if err != nil {
		return fmt.Errorf("hide the cgroup v2 controllers of a hybrid host: %w", err)
	}
	return nil
}
