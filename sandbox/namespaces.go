package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/privdir"
)

// nsKind is a namespace a pod may own: net, ipc or uts.
type nsKind string

const (
	nsNet nsKind = "net"
	nsIPC nsKind = "ipc"
	nsUTS nsKind = "uts"
)

var nsKinds = []nsKind{nsNet, nsIPC, nsUTS}

func (k nsKind) cloneFlag() int {
	switch k {
	case nsNet:
		return unix.CLONE_NEWNET
	case nsIPC:
		return unix.CLONE_NEWIPC
	}
	return unix.CLONE_NEWUTS
}

// createNamespaces makes the pod's namespaces and pins each by bind-mounting it on <dir>/ns/<kind>.
//
// Namespaces belong to threads: unshare runs on a thread of its own (see onDedicatedThread). The bind
// mounts keep the namespaces alive after the thread has left them.
func createNamespaces(nsDir string, kinds []nsKind) error {
	if len(kinds) == 0 {
		return nil
	}
	if err := privdir.Make(nsDir, privdir.Private); err != nil {
		return err
	}
	flags := 0
	for _, k := range kinds {
		f, err := os.OpenFile(filepath.Join(nsDir, string(k)), os.O_CREATE|os.O_RDONLY, 0o444)
		if err != nil {
			return err
		}
		f.Close()
		flags |= k.cloneFlag()
	}
	return onDedicatedThread(kinds, func() error {
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		for _, k := range kinds {
			target := filepath.Join(nsDir, string(k))
			if err := unix.Mount("/proc/thread-self/ns/"+string(k), target, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("pin %s namespace on %s: %w", k, target, err)
			}
		}
		return nil
	})
}

// removeNamespaces unpins and deletes every namespace file under nsDir; missing or unpinned files are fine.
func removeNamespaces(nsDir string) error {
	for _, k := range slices.Concat(nsKinds, []nsKind{nsUser, nsPID}) {
		p := filepath.Join(nsDir, string(k))
		if err := unmountAll(p); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(nsDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// inNamespaces runs fn on a dedicated thread that has joined the pinned namespaces in paths.
func inNamespaces(paths map[nsKind]string, fn func() error) error {
	var kinds []nsKind
	for _, k := range nsKinds {
		if _, ok := paths[k]; ok {
			kinds = append(kinds, k)
		}
	}
	return onDedicatedThread(kinds, func() error {
		for _, k := range nsKinds {
			p, ok := paths[k]
			if !ok {
				continue
			}
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s namespace: %w", k, err)
			}
			err = unix.Setns(fd, k.cloneFlag())
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("join %s namespace %s: %w", k, p, err)
			}
		}
		return fn()
	})
}

// onDedicatedThread runs fn on a fresh goroutine locked to its OS thread, for fn to move that thread into
// other namespaces of the given kinds. The lock is never released, so the Go runtime ends the thread with
// the goroutine rather than reuse it. The thread's own namespaces are restored all the same: when the
// goroutine happens to run on the main thread, the runtime cannot end it and parks it for good instead,
// which would keep a pod's namespaces alive and make /proc/self/ns lie.
func onDedicatedThread(kinds []nsKind, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var saved []int
		defer func() {
			for _, fd := range saved {
				unix.Close(fd)
			}
		}()
		for _, k := range kinds {
			fd, err := unix.Open("/proc/thread-self/ns/"+string(k), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- fmt.Errorf("open own %s namespace: %w", k, err)
				return
			}
			saved = append(saved, fd)
		}
		err := fn()
		for i, k := range kinds {
			if rerr := unix.Setns(saved[i], k.cloneFlag()); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore %s namespace of thread: %w", k, rerr))
			}
		}
		errc <- err
	}()
	return <-errc
}

// configureNamespaces sets the hostname, brings up loopback and writes the sysctls inside the pod's
// namespaces. /proc/sys resolves net, ipc and uts entries against the calling thread's namespaces.
func configureNamespaces(paths map[nsKind]string, hostname string, sysctls map[string]string) error {
	if len(paths) == 0 {
		return nil
	}
	return inNamespaces(paths, func() error {
		if _, ok := paths[nsUTS]; ok {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", hostname, err)
			}
		}
		if _, ok := paths[nsNet]; ok {
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return fmt.Errorf("find loopback: %w", err)
			}
			if err := netlink.LinkSetUp(lo); err != nil {
				return fmt.Errorf("bring up loopback: %w", err)
			}
		}
		return writeSysctls(sysctls)
	})
}
