package privdir

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// Listen listens on a unix socket at path with mode, connectable at no wider mode at any moment: it is bound in a
// new 0700 dir beside path (same filesystem), chmodded there and renamed into place (the listener keeps the
// socket). A file at path is replaced. Closing the listener does not remove path.
func Listen(path string, mode fs.FileMode) (*net.UnixListener, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".sock-") // 0700
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	// Bound through the dir's descriptor: the address stays short whatever the length of path's dir.
	d, err := os.Open(tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	defer d.Close()
	bound := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/s", d.Fd()), Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(bound, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Rename(bound, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return ln, nil
}
