package specgen

import (
	"errors"
	"maps"
	"path"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// rootfsPath is where the container's root is mounted, relative to its bundle.
const rootfsPath = "rootfs"

// Spec builds the OCI runtime spec of a container. It reads nothing itself: the machine comes in through
// in.Host. Invalid requests fail with errors wrapping errdefs.ErrInvalidArgument (or ErrFailedPrecondition
// when the host cannot do what is asked) that name the CRI field.
func Spec(in SpecInput) (*specs.Spec, error) {
	if in.User == nil {
		return nil, errors.New("specgen: SpecInput.User not set (use ResolveUser)")
	}
	sc := &LinuxContainerSecurityContext{}
	var res *LinuxContainerResources
	if l := in.Config.Linux; l != nil {
		if l.SecurityContext != nil {
			sc = l.SecurityContext
		}
		res = l.Resources
	}
	if sc.Privileged && !in.Pod.Privileged {
		return nil, errdefs.InvalidArgument(secField+".privileged", "the pod is not privileged")
	}

	args, err := processArgs(&in.Config, &in.Image)
	if err != nil {
		return nil, err
	}
	caps, err := capabilities(sc, in.Host.BoundingCaps)
	if err != nil {
		return nil, err
	}
	apparmor, err := apparmorProfile(sc, &in.Host)
	if err != nil {
		return nil, err
	}
	ns, err := containerNamespaces(&in, sc)
	if err != nil {
		return nil, err
	}
	if err := ValidateSysctls(in.Pod.Sysctls, ns.hostNetwork, ns.hostIPC); err != nil {
		return nil, err
	}
	mnts, rootPropagation, err := mounts(&in, sc, ns)
	if err != nil {
		return nil, err
	}
	devs, rules, err := devices(&in, sc)
	if err != nil {
		return nil, err
	}
	seccomp, err := seccompProfile(sc, caps.Bounding, in.Host.FS)
	if err != nil {
		return nil, err
	}
	masked, readonly := maskedPaths(sc, ns.userns)

	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: in.Config.Tty,
			User: specs.User{
				UID:            in.User.UID,
				GID:            in.User.GID,
				AdditionalGids: append([]uint32(nil), in.User.AdditionalGids...),
			},
			Args:            args,
			Env:             processEnv(&in.Config, &in.Image, in.Pod.Hostname),
			Cwd:             workingDir(&in.Config, &in.Image),
			Capabilities:    caps,
			NoNewPrivileges: sc.NoNewPrivs,
			ApparmorProfile: apparmor,
			OOMScoreAdj:     oomScoreAdj(res, in.Host.OOMScoreAdjMin),
		},
		Root:        &specs.Root{Path: rootfsPath, Readonly: sc.ReadonlyRootfs},
		Mounts:      mnts,
		Annotations: annotations(&in),
		Linux: &specs.Linux{
			Sysctl:            maps.Clone(in.Pod.Sysctls),
			Resources:         &specs.LinuxResources{Devices: rules},
			CgroupsPath:       cgroupsPath(&in.Pod, in.ID),
			Namespaces:        ns.list,
			Devices:           devs,
			Seccomp:           seccomp,
			RootfsPropagation: rootPropagation,
			MaskedPaths:       masked,
			ReadonlyPaths:     readonly,
		},
	}
	if ns.userns {
		u := in.Pod.UsernsOptions
		s.Linux.UIDMappings, s.Linux.GIDMappings = specMappings(u.Uids), specMappings(u.Gids)
	}
	if err := resources(res, &in.Host, s.Linux.Resources); err != nil {
		return nil, err
	}
	return s, nil
}

// cgroupsPath puts the container below its pod's cgroup: "<parent>/<id>" for cgroupfs, "<slice>:berth:<id>"
// for runc's systemd driver.
func cgroupsPath(pod *Pod, id string) string {
	if pod.SystemdCgroup {
		return path.Base(pod.CgroupParent) + ":berth:" + id
	}
	return filepath.Join("/", pod.CgroupParent, id)
}

// annotations are containerd's io.kubernetes.cri.* annotations, for tools reading OCI state.
func annotations(in *SpecInput) map[string]string {
	return map[string]string{
		"io.kubernetes.cri.container-type":    "container",
		"io.kubernetes.cri.container-name":    in.Config.Name,
		"io.kubernetes.cri.image-name":        in.Config.Image,
		"io.kubernetes.cri.sandbox-id":        in.Pod.ID,
		"io.kubernetes.cri.sandbox-name":      in.Pod.Name,
		"io.kubernetes.cri.sandbox-namespace": in.Pod.Namespace,
		"io.kubernetes.cri.sandbox-uid":       in.Pod.UID,
	}
}
