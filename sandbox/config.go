package sandbox

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/berthcri/berth/internal/errdefs"
)

// NamespaceMode says whose namespace of one kind a pod's containers use. The values are the CRI's.
type NamespaceMode int

const (
	NamespacePod       NamespaceMode = iota // the pod's own, shared by its containers
	NamespaceContainer                      // one per container (PID only)
	NamespaceNode                           // the host's
	NamespaceTarget                         // another container's (containers only, never a pod)
)

func (m NamespaceMode) String() string {
	switch m {
	case NamespacePod:
		return "POD"
	case NamespaceContainer:
		return "CONTAINER"
	case NamespaceNode:
		return "NODE"
	case NamespaceTarget:
		return "TARGET"
	}
	return fmt.Sprintf("NamespaceMode(%d)", int(m))
}

// NamespaceOptions are the pod's namespace modes; the zero value is a pod with its own network, PID and IPC.
type NamespaceOptions struct {
	Network NamespaceMode
	PID     NamespaceMode
	IPC     NamespaceMode
}

// DNSConfig is written to the pod's resolv.conf; when all of it is empty the host's file is copied.
type DNSConfig struct {
	Servers  []string
	Searches []string
	Options  []string
}

// PortMapping is a port the network setup publishes (CNI portmap).
type PortMapping struct {
	Protocol      string // TCP, UDP or SCTP
	ContainerPort int32
	HostPort      int32
	HostIP        string
}

// Config is what sandbox needs to know about a pod; cri/ maps the CRI's PodSandboxConfig to it.
type Config struct {
	ID           string // berth's pod id, names the runtime dir
	Name         string // metadata.name
	Namespace    string // metadata.namespace
	UID          string // metadata.uid
	Attempt      uint32
	Hostname     string // empty: the host's
	LogDir       string // made when set, never removed: it belongs to the kubelet
	DNS          DNSConfig
	PortMappings []PortMapping
	// CgroupParent is the pod-level cgroup the kubelet made: a cgroupfs path (/kubepods/burstable/pod<uid>) or
	// a systemd slice (kubepods-burstable-pod<uid>.slice), per the cgroup driver. Empty: berth makes one.
	CgroupParent string
	Namespaces   NamespaceOptions
	Sysctls      map[string]string // namespaced sysctls, dotted (net.ipv4.ip_forward) or slashed names
	Annotations  map[string]string // the pod's annotations (the network reads bandwidth limits from them)
	UserNS       *UserNamespace    // the pod's own user namespace; nil: the host's
	// RuntimeHandler is the RuntimeClass handler the pod's monitor runs its containers with ("" or "runc":
	// libcontainer); the caller checked that it is configured.
	RuntimeHandler string
}

var podIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,128}$`)

const maxHostname = 64 // HOST_NAME_MAX

func (c *Config) validate() error {
	if !podIDPattern.MatchString(c.ID) {
		// The id names a directory, a cgroup and a systemd unit: no separators of any of them.
		return errdefs.InvalidArgument("pod id", "%q must be 1 to 128 letters or digits", c.ID)
	}
	if len(c.Hostname) > maxHostname || strings.IndexFunc(c.Hostname, badFileChar) >= 0 {
		return errdefs.InvalidArgument("hostname", "%q must be at most %d characters without spaces", c.Hostname, maxHostname)
	}
	ns := c.Namespaces
	if ns.Network != NamespacePod && ns.Network != NamespaceNode {
		return errdefs.InvalidArgument("namespace_options.network", "%s is not valid for a pod (want POD or NODE)", ns.Network)
	}
	if ns.IPC != NamespacePod && ns.IPC != NamespaceNode {
		return errdefs.InvalidArgument("namespace_options.ipc", "%s is not valid for a pod (want POD or NODE)", ns.IPC)
	}
	if ns.PID != NamespacePod && ns.PID != NamespaceContainer && ns.PID != NamespaceNode {
		return errdefs.InvalidArgument("namespace_options.pid", "%s is not valid for a pod (want POD, CONTAINER or NODE)", ns.PID)
	}
	if c.UserNS != nil {
		if err := c.UserNS.validate(ns); err != nil {
			return err
		}
	}
	for field, values := range map[string][]string{
		"dns_config.servers": c.DNS.Servers, "dns_config.searches": c.DNS.Searches, "dns_config.options": c.DNS.Options,
	} {
		for _, v := range values {
			// One resolv.conf word each: a space or newline would forge other lines.
			if v == "" || strings.IndexFunc(v, badFileChar) >= 0 {
				return errdefs.InvalidArgument(field, "%q must be one word", v)
			}
		}
	}
	for key := range c.Sysctls {
		kind, err := classifySysctl(key)
		if err != nil {
			return err
		}
		if !c.ownsNamespace(kind) {
			return errdefs.InvalidArgument("sysctls", "%q needs the pod's own %s namespace", key, kind)
		}
	}
	return nil
}

func badFileChar(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// ownsNamespace says whether the pod gets a namespace of this kind of its own (and sandbox makes it).
// The UTS namespace follows the network one, as in the kubelet: host network means host hostname.
func (c *Config) ownsNamespace(kind nsKind) bool {
	switch kind {
	case nsNet, nsUTS:
		return c.Namespaces.Network == NamespacePod
	case nsIPC:
		return c.Namespaces.IPC == NamespacePod
	}
	return false
}
