package specgen

import (
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// allCaps are the capabilities by number (linux/capability.h).
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

const capSysResource = 24

// defaultCaps is the set containerd (1.x to 2.1) and Docker give a container.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// capNames lists the capabilities of a mask in number order; bits the table does not know are left out.
func capNames(mask uint64) []string {
	var out []string
	for i, name := range allCaps {
		if mask&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// capSet is a set of capability numbers.
type capSet uint64

func (s capSet) names() []string { return capNames(uint64(s)) }

func capSetOf(names []string) capSet {
	var s capSet
	for _, n := range names {
		if i := slices.Index(allCaps, n); i >= 0 {
			s |= 1 << i
		}
	}
	return s
}

// parseCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into its number.
func parseCap(field, name string) (int, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if i := slices.Index(allCaps, n); i >= 0 {
		return i, nil
	}
	return 0, errdefs.InvalidArgument(field, "unknown capability %q", name)
}

// capabilities computes the process capabilities. Like containerd: "ALL" in add gives the bounding set and
// in drop clears everything, then single adds, then single drops. Added capabilities go into the bounding,
// effective and permitted sets; ambient ones into every set; drops remove from every set. Privileged means the
// whole bounding set. Asking for a capability outside the bounding set fails: the container could not start.
func capabilities(sc *LinuxContainerSecurityContext, bounding []string) (*specs.LinuxCapabilities, error) {
	host := capSetOf(bounding)
	set := capSetOf(defaultCaps) & host
	var ambient capSet
	if c := sc.Capabilities; c != nil {
		if hasAll(c.AddCapabilities) {
			set = host
		}
		if hasAll(c.DropCapabilities) {
			set = 0
		}
		for _, name := range c.AddCapabilities {
			if strings.EqualFold(name, "ALL") {
				continue
			}
			i, err := hostCap("linux.security_context.capabilities.add_capabilities", name, host)
			if err != nil {
				return nil, err
			}
			set |= 1 << i
		}
		for _, name := range c.AddAmbientCapabilities {
			i, err := hostCap("linux.security_context.capabilities.add_ambient_capabilities", name, host)
			if err != nil {
				return nil, err
			}
			ambient |= 1 << i
		}
		set |= ambient
		for _, name := range c.DropCapabilities {
			if strings.EqualFold(name, "ALL") {
				continue
			}
			i, err := parseCap("linux.security_context.capabilities.drop_capabilities", name)
			if err != nil {
				return nil, err
			}
			set &^= 1 << i
			ambient &^= 1 << i
		}
	}
	if sc.Privileged {
		set = host
	}
	return &specs.LinuxCapabilities{
		Bounding:    set.names(),
		Effective:   set.names(),
		Permitted:   set.names(),
		Inheritable: ambient.names(),
		Ambient:     ambient.names(),
	}, nil
}

func hostCap(field, name string, host capSet) (int, error) {
	i, err := parseCap(field, name)
	if err != nil {
		return 0, err
	}
	if host&(1<<i) == 0 {
		return 0, errdefs.InvalidArgument(field, "%s is not in the runtime's capability bounding set", allCaps[i])
	}
	return i, nil
}

func hasAll(names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, "ALL") })
}
