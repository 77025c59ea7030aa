package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
)

// IDMapping maps Size ids from ContainerID in a user namespace to HostID on the host.
type IDMapping struct {
	ContainerID, HostID, Size uint32
}

// UserNamespace is a pod's own user namespace (Kubernetes' KEP-127): its containers run in it, and it owns the pod's
// network, IPC, UTS and PID namespaces.
//
// Only a process can be given a user namespace, and a namespace is owned by the user namespace of the process that
// makes it: so the pod's pause process is cloned into all of them at once (the kernel makes the user namespace first
// and gives it the others; see monitor.UserNamespace), and sandbox pins them from it. Such a pod therefore always has
// a pause process, made before its namespaces: its cgroup and monitor stages come first (podStages).
type UserNamespace struct {
	UIDs []IDMapping
	GIDs []IDMapping
}

// pauseID is the uid and gid the pause process drops to (oci/pause): a user namespace must map it.
const pauseID = 65535

func (u *UserNamespace) validate(ns NamespaceOptions) error {
	const field = "namespace_options.userns_options"
	switch {
	case len(u.UIDs) == 0 || len(u.GIDs) == 0:
		return errdefs.InvalidArgument(field, "a user namespace needs uid and gid mappings")
	case !maps(u.UIDs, 0) || !maps(u.GIDs, 0):
		return errdefs.InvalidArgument(field, "id 0 is not mapped")
	case !maps(u.UIDs, pauseID) || !maps(u.GIDs, pauseID):
		return errdefs.InvalidArgument(field, "id %d (the pause process's) is not mapped: map at least 65536 ids", pauseID)
	case ns.PID == NamespaceNode || ns.IPC == NamespaceNode:
		// Its containers could not mount /proc or mqueue for namespaces their user namespace does not own.
		return errdefs.InvalidArgument(field, "a user namespace cannot be used with the host's PID or IPC namespace")
	}
	return nil
}

func maps(ms []IDMapping, id uint32) bool {
	return slices.ContainsFunc(ms, func(m IDMapping) bool { return id >= m.ContainerID && id-m.ContainerID < m.Size })
}

// nsUser is the pinned user namespace of a pod that has its own.
const nsUser nsKind = "user"

// nsPID is the pinned PID namespace of the pause process of a pod that shares one.
const nsPID nsKind = "pid"

// UserNSPath is the pod's pinned user namespace, "" when the pod uses the host's.
func (p *Pod) UserNSPath() string {
	if p.cfg.UserNS == nil {
		return ""
	}
	return p.path(filepath.Join(nsDir, string(nsUser)))
}

// pauseUnshare names the namespaces the pause process of a pod with its own user namespace makes for the pod.
func (p *Pod) pauseUnshare() []string {
	if p.cfg.UserNS == nil {
		return nil
	}
	var names []string
	for _, k := range kindsOf(p) {
		names = append(names, string(k))
	}
	return names
}

// podStages are the stages of making p: those of stages, except that a pod with its own user namespace gets its
// cgroup and monitor (whose pause process makes the namespaces) right after its record.
func (m *Manager) podStages(p *Pod, hostname string) []stage {
	stages := m.stages(hostname)
	if p.cfg.UserNS == nil {
		return stages
	}
	var early, rest []stage
	for _, s := range stages {
		if s.name == "cgroup" || s.name == "monitor" {
			early = append(early, s)
		} else {
			rest = append(rest, s)
		}
	}
	return slices.Concat(rest[:1], early, rest[1:])
}

// pinPauseNamespaces pins the user namespace of p's pause process and the namespaces it made for the pod on
// <dir>/ns/<kind>.
func pinPauseNamespaces(p *Pod) error {
	if p.monitor == nil || p.monitor.PausePid() <= 0 {
		return errors.New("the monitor runs no pause process to take the pod's namespaces from")
	}
	for _, k := range append([]nsKind{nsUser}, kindsOf(p)...) {
		if err := pinPauseNamespace(p, k); err != nil {
			return err
		}
	}
	return nil
}

// pinPauseNamespace bind-mounts the pause process's namespace of kind k on <dir>/ns/<k>, opened through the
// monitor's pidfd of the pause: never the namespace of a later process given its pid.
func pinPauseNamespace(p *Pod, k nsKind) error {
	ns, err := p.monitor.PauseNamespace(string(k))
	if err != nil {
		return fmt.Errorf("pin %s namespace: %w", k, err)
	}
	defer ns.Close()
	dir := p.path(nsDir)
	if err := privdir.Make(dir, privdir.Private); err != nil {
		return err
	}
	target := filepath.Join(dir, string(k))
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", ns.Fd()), target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin %s namespace on %s: %w", k, target, err)
	}
	return nil
}

// dirGID is the group of p's dir: 0710 to the host gid of its user namespace's root, which is no one on the host
// yet finds its pause dir, rootfs and mount sources there (the pause process, runc's container init); else private.
func (p *Pod) dirGID() int {
	if p.cfg.UserNS == nil {
		return privdir.Private
	}
	for _, g := range p.cfg.UserNS.GIDs {
		if g.ContainerID == 0 {
			return int(g.HostID)
		}
	}
	return privdir.Private // validate requires a mapping of 0
}

// UserNamespaces says why pods cannot have their own user namespace on this host; nil when they can: user namespaces
// and idmapped mounts work for the pods dir (ProbeUserNamespaces), and the userns group (Options.UsernsGID), which a
// pod's pause process and runc's container init carry, can traverse every directory above it (0710 to it, or
// searchable by others): the root of a pod's user namespace is no one on the host.
func (m *Manager) UserNamespaces() error {
	if m.usernsGID == privdir.Private {
		return fmt.Errorf("no userns group may traverse %s (userns_group unset or missing on this host)", m.podsDir)
	}
	for d := m.podsDir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !traversable(st, m.usernsGID) {
			return fmt.Errorf("%s (mode %#o, gid %d) is not searchable by gid %d or others: user namespaces cannot reach %s",
				d, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid, m.usernsGID, m.podsDir)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return ProbeUserNamespaces(m.podsDir)
}

// traversable says whether a process of no user of the host but in group gid may search dir st.
func traversable(st fs.FileInfo, gid int) bool {
	perm := st.Mode().Perm()
	return perm&0o001 != 0 || perm&0o010 != 0 && st.Sys().(*syscall.Stat_t).Gid == uint32(gid)
}

// ProbeUserNamespaces says why dir cannot be idmapped into a user namespace, nil when it can: the kernel makes user
// namespaces and dir's filesystem takes idmapped mounts.
func ProbeUserNamespaces(dir string) error {
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65536, Size: 65536}}
	proc, err := startStopped(m)
	if err != nil {
		return fmt.Errorf("create a user namespace: %w", err)
	}
	defer func() {
		_ = proc.Kill()
		_, _ = proc.Wait()
	}()
	userns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", proc.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(userns)
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("clone %s: %w", dir, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("idmapped mounts of %s: %w", dir, err)
	}
	return nil
}

// startStopped starts a process in a new user namespace with mappings m, which never runs: like runc, it is stopped
// by PTRACE_TRACEME at its exec, and it dies with the thread that started it (should the caller not kill it).
func startStopped(m []syscall.SysProcIDMap) (*os.Process, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return os.StartProcess("/proc/self/exe", []string{"berthd-userns-probe", "version"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Ptrace: true,
			Pdeathsig: syscall.SIGKILL},
	})
}
