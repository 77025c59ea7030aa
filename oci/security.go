package oci

import (
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

// apparmorProfile returns the process's AppArmor profile ("" leaves it as the runtime's, unconfined). On a host
// without AppArmor nothing is set, but asking for a Localhost profile fails like in containerd: the
// confinement asked for cannot be given. Privileged containers are not confined.
func apparmorProfile(sc *LinuxContainerSecurityContext, host *Host) (string, error) {
	p := sc.Apparmor
	field := secField + ".apparmor"
	if p == nil {
		field = secField + ".apparmor_profile"
		switch s := sc.ApparmorProfile; {
		case s == "":
		case s == "runtime/default":
			p = &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}
		case s == "unconfined":
			p = &SecurityProfile{ProfileType: ProfileTypeUnconfined}
		case strings.HasPrefix(s, "localhost/"):
			p = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: strings.TrimPrefix(s, "localhost/")}
		default:
			return "", errdefs.InvalidArgument(field, "unknown profile %q", s)
		}
	}
	if p != nil && p.ProfileType == ProfileTypeLocalhost && p.LocalhostRef == "" {
		return "", errdefs.InvalidArgument(field+".localhost_ref", "empty")
	}
	if sc.Privileged {
		return "", nil
	}
	if !host.AppArmor {
		if p != nil && p.ProfileType == ProfileTypeLocalhost {
			return "", errdefs.FailedPrecondition("%s: AppArmor profile %q asked for, but AppArmor is not enabled on this host", field, p.LocalhostRef)
		}
		return "", nil
	}
	if p == nil {
		// The runtime default applies when nothing is asked (kubernetes#51746).
		p = &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}
	}
	switch p.ProfileType {
	case ProfileTypeRuntimeDefault:
		return host.AppArmorDefaultProfile, nil
	case ProfileTypeUnconfined:
		return "", nil
	case ProfileTypeLocalhost:
		return strings.TrimPrefix(p.LocalhostRef, "localhost/"), nil
	}
	return "", errdefs.InvalidArgument(field+".profile_type", "unknown profile type %d", p.ProfileType)
}
