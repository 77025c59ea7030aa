package specgen

import (
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/sysctl"
)

const nsField = "linux.security_context.namespace_options"

// namespaces is where a container's processes live.
type namespaces struct {
	list        []specs.LinuxNamespace
	hostNetwork bool
	hostIPC     bool
	// podIPC is set when the container shares the pod's IPC namespace (and so its /dev/shm).
	podIPC bool
	userns bool
}

// containerNamespaces maps the namespace options to namespaces: POD joins the pod's (the host's when the pod
// uses those), CONTAINER makes a new one, NODE stays in the host's, TARGET joins the target container's PID
// namespace. UTS follows the pod. Mount is always new, cgroup too on a cgroup v2 host unless privileged.
func containerNamespaces(in *SpecInput, sc *LinuxContainerSecurityContext) (namespaces, error) {
	opts := sc.NamespaceOptions
	if opts == nil {
		opts = &NamespaceOption{}
	}
	var ns namespaces
	join := func(t specs.LinuxNamespaceType, path string) {
		ns.list = append(ns.list, specs.LinuxNamespace{Type: t, Path: path})
	}

	switch opts.Pid {
	case NamespaceModePod:
		if in.Pod.PIDNS == "" {
			return ns, errdefs.FailedPrecondition("%s.pid is POD but pod %s shares no PID namespace", nsField, in.Pod.ID)
		}
		join(specs.PIDNamespace, in.Pod.PIDNS)
	case NamespaceModeContainer:
		join(specs.PIDNamespace, "")
	case NamespaceModeNode:
	case NamespaceModeTarget:
		if in.TargetPIDNS == "" {
			return ns, errdefs.InvalidArgument(nsField+".target_id", "container %q has no PID namespace to join", opts.TargetId)
		}
		join(specs.PIDNamespace, in.TargetPIDNS)
	default:
		return ns, errdefs.InvalidArgument(nsField+".pid", "unknown mode %d", opts.Pid)
	}

	var err error
	if ns.hostIPC, ns.podIPC, err = sharedNamespace(&ns.list, specs.IPCNamespace, opts.Ipc, in.Pod.IPCNS, "ipc"); err != nil {
		return ns, err
	}
	if in.Pod.UTSNS != "" {
		join(specs.UTSNamespace, in.Pod.UTSNS)
	}
	join(specs.MountNamespace, "")
	if ns.hostNetwork, _, err = sharedNamespace(&ns.list, specs.NetworkNamespace, opts.Network, in.Pod.NetNS, "network"); err != nil {
		return ns, err
	}

	if !sameUserns(opts.UsernsOptions, in.Pod.UsernsOptions) {
		return ns, errdefs.InvalidArgument(nsField+".userns_options", "differs from the pod's")
	}
	if err := ValidateUserNamespace(opts.UsernsOptions); err != nil {
		return ns, err
	}
	if u := opts.UsernsOptions; u != nil && u.Mode == NamespaceModePod {
		join(specs.UserNamespace, in.Pod.UserNS)
		ns.userns = true
	}
	if in.Host.CgroupV2 && !sc.Privileged {
		join(specs.CgroupNamespace, "")
	}
	return ns, nil
}

// sharedNamespace adds the network or IPC namespace, which the kubelet only sets to POD or NODE.
func sharedNamespace(list *[]specs.LinuxNamespace, t specs.LinuxNamespaceType, mode NamespaceMode, podPath, name string) (host, pod bool, err error) {
	switch mode {
	case NamespaceModePod:
		if podPath == "" {
			return true, true, nil
		}
		*list = append(*list, specs.LinuxNamespace{Type: t, Path: podPath})
		return false, true, nil
	case NamespaceModeContainer:
		*list = append(*list, specs.LinuxNamespace{Type: t})
		return false, false, nil
	case NamespaceModeNode:
		return true, false, nil
	}
	return false, false, errdefs.InvalidArgument(nsField+"."+name, "mode %d is not supported", mode)
}

func sameUserns(a, b *UserNamespace) bool {
	isNode := func(u *UserNamespace) bool {
		return u == nil || (u.Mode == NamespaceModeNode && len(u.Uids) == 0 && len(u.Gids) == 0)
	}
	if isNode(a) || isNode(b) {
		return isNode(a) && isNode(b)
	}
	return a.Mode == b.Mode && equalMappings(a.Uids, b.Uids) && equalMappings(a.Gids, b.Gids)
}

func equalMappings(a, b []IDMapping) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ValidateUserNamespace checks user namespace options as critest expects, for pods and containers: nil or
// NODE without mappings is the host's user namespace; POD needs exactly one uid and one gid mapping, each
// mapping container id 0; CONTAINER and TARGET are not supported.
func ValidateUserNamespace(u *UserNamespace) error {
	const field = nsField + ".userns_options"
	if u == nil {
		return nil
	}
	switch u.Mode {
	case NamespaceModeNode:
		if len(u.Uids) != 0 || len(u.Gids) != 0 {
			return errdefs.InvalidArgument(field, "mode NODE takes no mappings, got %d uid and %d gid mappings", len(u.Uids), len(u.Gids))
		}
		return nil
	case NamespaceModePod:
		if err := checkMapping(field+".uids", u.Uids); err != nil {
			return err
		}
		return checkMapping(field+".gids", u.Gids)
	case NamespaceModeContainer:
		return errdefs.InvalidArgument(field+".mode", "CONTAINER is not supported, only POD and NODE")
	case NamespaceModeTarget:
		return errdefs.InvalidArgument(field+".mode", "TARGET is not supported, only POD and NODE")
	}
	return errdefs.InvalidArgument(field+".mode", "unknown mode %d", u.Mode)
}

func checkMapping(field string, m []IDMapping) error {
	switch {
	case len(m) != 1:
		return errdefs.InvalidArgument(field, "exactly one mapping is supported, got %d", len(m))
	case m[0].Length == 0:
		return errdefs.InvalidArgument(field, "mapping length is 0")
	case m[0].ContainerId != 0:
		return errdefs.InvalidArgument(field, "container id 0 is not mapped (mapping starts at %d)", m[0].ContainerId)
	case uint64(m[0].HostId)+uint64(m[0].Length) > 1<<32:
		return errdefs.InvalidArgument(field, "host ids %d+%d overflow", m[0].HostId, m[0].Length)
	}
	return nil
}

func specMappings(m []IDMapping) []specs.LinuxIDMapping {
	if len(m) == 0 {
		return nil
	}
	out := make([]specs.LinuxIDMapping, len(m))
	for i, x := range m {
		out[i] = specs.LinuxIDMapping{ContainerID: x.ContainerId, HostID: x.HostId, Size: x.Length}
	}
	return out
}

// ValidateSysctls accepts only namespaced sysctls (internal/sysctl), in the pod's own namespaces: no net.* with the
// host's network namespace, no kernel.domainname with it either (the UTS namespace follows the network's), no IPC
// sysctl with the host's IPC namespace. Everything else would change the host.
func ValidateSysctls(sysctls map[string]string, hostNetwork, hostIPC bool) error {
	for key := range sysctls {
		field := `linux.sysctls["` + key + `"]`
		ns, err := sysctl.Classify(key)
		switch {
		case err != nil:
			return errdefs.InvalidArgument(field, "not a namespaced sysctl")
		case ns == sysctl.IPC && hostIPC:
			return errdefs.InvalidArgument(field, "IPC sysctl not allowed with the host's IPC namespace")
		case ns != sysctl.IPC && hostNetwork:
			return errdefs.InvalidArgument(field, "network and UTS sysctls not allowed with the host's network namespace")
		}
	}
	return nil
}
