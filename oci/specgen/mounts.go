package specgen

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// defaultMounts are containerd's: the kernel filesystems every container gets. A supplied mount at the same
// place replaces one; a supplied /dev replaces everything below /dev too.
func defaultMounts(privileged bool, bindSys bool) []specs.Mount {
	sysfs, cgroupfs := "ro", "ro"
	if privileged {
		sysfs, cgroupfs = "rw", "rw"
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysfs}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", cgroupfs}},
	}
	if bindSys {
		// A user namespace cannot mount sysfs for a network namespace it does not own (the host's): bind it.
		mounts[5] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "rro", "nosuid", "nodev", "noexec"}}
	}
	return mounts
}

// podMounts are the pod's files every container sees unless a CRI mount takes their place. They follow
// readonly_rootfs and, in a user namespace, are idmapped to it.
func podMounts(pod *Pod, sc *LinuxContainerSecurityContext, ns namespaces) []Mount {
	var uids, gids []IDMapping
	if u := pod.UsernsOptions; ns.userns && u != nil {
		uids, gids = u.Uids, u.Gids
	}
	var out []Mount
	for _, f := range []struct{ dst, src string }{
		{"/etc/hostname", pod.HostnamePath},
		{"/etc/hosts", pod.HostsPath},
		{"/etc/resolv.conf", pod.ResolvConfPath},
	} {
		if f.src != "" {
			out = append(out, Mount{ContainerPath: f.dst, HostPath: f.src, Readonly: sc.ReadonlyRootfs, UidMappings: uids, GidMappings: gids})
		}
	}
	if ns.podIPC && pod.ShmPath != "" {
		out = append(out, Mount{ContainerPath: "/dev/shm", HostPath: pod.ShmPath})
	}
	return out
}

// mountOptions are the extra bind mount options (Mount.mount_options) berth accepts: flags that only restrict
// or change timestamps. Read-only-ness and propagation have their own fields.
var mountOptions = map[string]bool{
	"nosuid": true, "suid": true, "nodev": true, "dev": true, "noexec": true, "exec": true,
	"noatime": true, "atime": true, "nodiratime": true, "diratime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "nosymfollow": true, "symfollow": true,
	"rnosuid": true, "rsuid": true, "rnodev": true, "rdev": true, "rnoexec": true, "rexec": true,
	"rnoatime": true, "ratime": true, "rnodiratime": true, "rdiratime": true, "rrelatime": true,
	"rnorelatime": true, "rstrictatime": true, "rnostrictatime": true, "rnosymfollow": true, "rsymfollow": true,
}

// mounts builds the spec's mounts and the root propagation the bind mounts need, merging like containerd: CRI
// mounts win over pod mounts at the same place, both are sorted by depth (stable) so a parent is mounted
// before its children, and both replace default mounts at the same place.
func mounts(in *SpecInput, sc *LinuxContainerSecurityContext, ns namespaces) ([]specs.Mount, string, error) {
	type bind struct {
		Mount
		field string // "mounts[i]" of a CRI mount, "" for the pod's own files
	}
	var binds []bind
	for i, m := range in.Config.Mounts {
		binds = append(binds, bind{m, fmt.Sprintf("mounts[%d]", i)})
	}
	for _, m := range podMounts(&in.Pod, sc, ns) {
		if !slices.ContainsFunc(in.Config.Mounts, func(c Mount) bool { return path.Clean(c.ContainerPath) == m.ContainerPath }) {
			binds = append(binds, bind{Mount: m})
		}
	}
	slices.SortStableFunc(binds, func(a, b bind) int { return depth(a.ContainerPath) - depth(b.ContainerPath) })

	taken := map[string]bool{}
	for _, b := range binds {
		taken[path.Clean(b.ContainerPath)] = true
	}
	var out []specs.Mount
	for _, m := range defaultMounts(sc.Privileged, ns.userns && ns.hostNetwork) {
		if taken[m.Destination] || (taken["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		out = append(out, m)
	}

	rootPropagation := ""
	for _, b := range binds {
		sm, prop, err := bindMount(&in.Host, b.Mount, b.field)
		if err != nil {
			return nil, "", err
		}
		if prop == "rshared" || (prop == "rslave" && rootPropagation == "") {
			rootPropagation = prop
		}
		out = append(out, sm)
	}
	return out, rootPropagation, nil
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }

// bindMount turns one CRI mount into a bind mount; field is "" for the pod's own files. It returns the
// propagation the container's root needs for it ("rshared", "rslave" or "").
func bindMount(host *Host, m Mount, field string) (specs.Mount, string, error) {
	fs := host.FS
	switch {
	case m.RecursiveReadOnly && !host.RecursiveReadOnly:
		// Advertised off (Status), so a kubelet does not ask; runc would fail the start less clearly.
		return specs.Mount{}, "", errdefs.FailedPrecondition("%s.recursive_read_only: the kernel cannot make recursive read-only mounts (mount_setattr, Linux 5.12)", field)
	case m.RecursiveReadOnly && !m.Readonly:
		return specs.Mount{}, "", errdefs.InvalidArgument(field+".recursive_read_only", "needs readonly")
	case m.RecursiveReadOnly && m.Propagation != PropagationPrivate:
		return specs.Mount{}, "", errdefs.InvalidArgument(field+".recursive_read_only", "needs propagation PROPAGATION_PRIVATE, got %s", propagationName(m.Propagation))
	}
	src := m.HostPath
	if field != "" {
		if !path.IsAbs(m.ContainerPath) {
			return specs.Mount{}, "", errdefs.InvalidArgument(field+".container_path", "%q is not absolute", m.ContainerPath)
		}
		if m.HostPath == "" {
			return specs.Mount{}, "", errdefs.InvalidArgument(field+".host_path", "empty")
		}
		resolved, err := fs.EvalSymlinks(m.HostPath)
		if err != nil {
			return specs.Mount{}, "", errdefs.InvalidArgument(field+".host_path", "%v", err)
		}
		src = resolved
	}

	opts := []string{"rbind"}
	var prop string
	switch m.Propagation {
	case PropagationPrivate:
		opts = append(opts, "rprivate")
	case PropagationHostToContainer, PropagationBidirectional:
		mp, err := fs.MountPoint(src)
		if err != nil {
			return specs.Mount{}, "", fmt.Errorf("%s.propagation: %w", field, err)
		}
		if m.Propagation == PropagationBidirectional {
			if !mp.Shared {
				return specs.Mount{}, "", errdefs.FailedPrecondition("%s.propagation: BIDIRECTIONAL needs a shared mount, but %q is on %q which is not shared", field, src, mp.Path)
			}
			prop = "rshared"
		} else {
			if !mp.Shared && !mp.Slave {
				return specs.Mount{}, "", errdefs.FailedPrecondition("%s.propagation: HOST_TO_CONTAINER needs a shared or slave mount, but %q is on %q which is private", field, src, mp.Path)
			}
			prop = "rslave"
		}
		opts = append(opts, prop)
	default:
		return specs.Mount{}, "", errdefs.InvalidArgument(field+".propagation", "unknown propagation %d", m.Propagation)
	}

	switch {
	case m.RecursiveReadOnly:
		opts = append(opts, "rro")
	case m.Readonly:
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}

	for _, o := range m.MountOptions {
		if !mountOptions[o] {
			return specs.Mount{}, "", errdefs.InvalidArgument(field+".mount_options", "option %q is not supported", o)
		}
		opts = append(opts, o)
	}
	if (len(m.UidMappings) == 0) != (len(m.GidMappings) == 0) {
		return specs.Mount{}, "", errdefs.InvalidArgument(field+".uidMappings", "an idmapped mount needs both uid and gid mappings")
	}
	return specs.Mount{
		Destination: filepath.Clean(m.ContainerPath),
		Type:        "bind",
		Source:      src,
		Options:     opts,
		UIDMappings: specMappings(m.UidMappings),
		GIDMappings: specMappings(m.GidMappings),
	}, prop, nil
}

func propagationName(p MountPropagation) string {
	switch p {
	case PropagationPrivate:
		return "PROPAGATION_PRIVATE"
	case PropagationHostToContainer:
		return "PROPAGATION_HOST_TO_CONTAINER"
	case PropagationBidirectional:
		return "PROPAGATION_BIDIRECTIONAL"
	}
	return fmt.Sprint(int32(p))
}
