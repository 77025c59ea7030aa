package specgen

import (
	"fmt"
	"slices"
	"strings"

	"github.com/berthcri/berth/internal/errdefs"
)

// defaultMaskedPaths and defaultReadonlyPaths are the runtime defaults (containerd's, the same as the
// kubelet sends for procMount: Default).
var (
	defaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// maskedPaths returns the paths to mask and to make read-only. The CRI cannot tell an empty list from an
// unset one (proto3), so empty means the runtime defaults; only in a pod with its own user namespace, the one
// place the kubelet allows procMount: Unmasked (which it sends as empty lists), does empty mean none.
// Privileged containers get neither.
func maskedPaths(sc *LinuxContainerSecurityContext, userns bool) (masked, readonly []string) {
	if sc.Privileged {
		return nil, nil
	}
	masked, readonly = slices.Clone(sc.MaskedPaths), slices.Clone(sc.ReadonlyPaths)
	if !userns {
		if len(masked) == 0 {
			masked = slices.Clone(defaultMaskedPaths)
		}
		if len(readonly) == 0 {
			readonly = slices.Clone(defaultReadonlyPaths)
		}
	}
	return masked, readonly
}

// apparmorProfile returns the process's AppArmor profile ("" leaves it unconfined), as containerd chooses it:
// RuntimeDefault and no profile mean the host's default profile (kubernetes#51746), Localhost a profile that must
// already be loaded, Unconfined none. Privileged containers are confined only by a Localhost profile. On a host
// without AppArmor nothing is set, but a Localhost profile fails: the confinement asked for cannot be given.
func apparmorProfile(sc *LinuxContainerSecurityContext, host *Host) (string, error) {
	p, field, err := apparmorRequest(sc)
	if err != nil {
		return "", err
	}
	if !host.AppArmor {
		if p.ProfileType == ProfileTypeLocalhost {
			return "", errdefs.FailedPrecondition("%s: AppArmor profile %q asked for, but AppArmor is not enabled on this host", field, p.LocalhostRef)
		}
		return "", nil
	}
	switch p.ProfileType {
	case ProfileTypeRuntimeDefault:
		if sc.Privileged {
			return "", nil
		}
		return host.AppArmorDefaultProfile, nil
	case ProfileTypeUnconfined:
		return "", nil
	case ProfileTypeLocalhost:
		name := strings.TrimPrefix(p.LocalhostRef, "localhost/")
		loaded, err := host.FS.AppArmorLoaded(name)
		if err != nil {
			return "", fmt.Errorf("%s: AppArmor profile %q: %w", field, name, err)
		}
		if !loaded {
			return "", errdefs.FailedPrecondition("%s: AppArmor profile %q is not loaded (load it with apparmor_parser first)", field, name)
		}
		return name, nil
	}
	return "", errdefs.InvalidArgument(field+".profile_type", "unknown profile type %d", p.ProfileType)
}

// apparmorRequest is the profile asked for, the structured field winning over the deprecated string, and the
// field that asked (with .localhost_ref for a Localhost one). Nothing asked is RuntimeDefault.
func apparmorRequest(sc *LinuxContainerSecurityContext) (*SecurityProfile, string, error) {
	if p := sc.Apparmor; p != nil {
		field := secField + ".apparmor"
		if p.ProfileType != ProfileTypeLocalhost {
			return p, field, nil
		}
		field += ".localhost_ref"
		if p.LocalhostRef == "" {
			return nil, "", errdefs.InvalidArgument(field, "empty")
		}
		return p, field, nil
	}
	field := secField + ".apparmor_profile"
	switch s := sc.ApparmorProfile; {
	case s == "", s == "runtime/default":
		return &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}, field, nil
	case s == "unconfined":
		return &SecurityProfile{ProfileType: ProfileTypeUnconfined}, field, nil
	case s == "localhost/":
		return nil, "", errdefs.InvalidArgument(field, "empty profile name in %q", s)
	case strings.HasPrefix(s, "localhost/"):
		return &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: strings.TrimPrefix(s, "localhost/")}, field, nil
	}
	return nil, "", errdefs.InvalidArgument(field, "unknown profile %q", sc.ApparmorProfile)
}
