package monitor

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxSockPath is what fits in sockaddr_un.sun_path with its terminating NUL.
const maxSockPath = 107

// withSocketPath calls fn with an address for <dir>/monitor.sock that fits in a unix socket address. A long state dir
// (a pod dir is <state>/pods/<64 hex digits>) is reached through /proc/self/fd/<fd of dir>: the kernel resolves the
// long path, the address stays short. fn must bind or connect before it returns.
func withSocketPath(dir string, fn func(addr string) error) error {
	if p := filepath.Join(dir, SocketName); len(p) <= maxSockPath {
		return fn(p)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, SocketName))
}
