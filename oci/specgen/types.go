// Package oci turns a container's CRI configuration, its image config and what the pod runtime knows about the
// pod into an OCI runtime spec. Spec is pure: everything it needs from the machine comes in through Host, so the
// same input always gives the same spec (golden tests in testdata/).
//
// The input types mirror the CRI messages (k8s.io/cri-api runtime/v1) field by field, with the generated Go
// names, so cri/ maps them one to one; enum values have the proto's numbers. Fields the spec does not depend on
// (labels, annotations, log path, stdin, selinux options) are left out.
package specgen

import (
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// SpecInput is everything a container's spec is made from.
type SpecInput struct {
	// ID is the container id; it names the container's cgroup.
	ID string
	// Pod is what the pod runtime knows about the container's pod.
	Pod Pod
	// Image is the image's config: entrypoint, cmd, env and working dir are used (USER goes through ResolveUser,
	// stop signal and volumes are the caller's business).
	Image ocispec.ImageConfig
	// Config is the container's CRI config.
	Config ContainerConfig
	// User is the process user as ResolveUser returned it. Required.
	User *specs.User
	// TargetPIDNS is /proc/<pid>/ns/pid of the container namespace_options.target_id names; used when the pid
	// mode is TARGET.
	TargetPIDNS string
	// Host describes the machine.
	Host Host
}

// Pod is what the pod runtime (sandbox/) provides about the pod a container joins.
type Pod struct {
	// ID, Name, Namespace and UID identify the pod (PodSandboxMetadata); they only go into annotations.
	ID, Name, Namespace, UID string
	// Hostname is the pod's hostname, the node's when the pod uses the host network. It becomes $HOSTNAME;
	// the UTS namespace already carries it.
	Hostname string
	// NetNS, IPCNS and UTSNS are the pod's pinned namespace files (<state>/pods/<id>/ns/{net,ipc,uts});
	// "" means the pod uses the host's.
	NetNS, IPCNS, UTSNS string
	// PIDNS is the pod's shared PID namespace, its pause process's pinned (<state>/pods/<id>/ns/pid); "" when the pod
	// shares none.
	PIDNS string
	// UserNS is the pod's pinned user namespace to join, if sandbox/ keeps one; with "" and user namespace mode
	// POD each container gets a new user namespace with the pod's mappings.
	UserNS string
	// UsernsOptions are the pod's user namespace options (namespace_options.userns_options); containers must
	// ask for the same.
	UsernsOptions *UserNamespace
	// HostnamePath, HostsPath and ResolvConfPath are bind-mounted at /etc/hostname, /etc/hosts and
	// /etc/resolv.conf; "" leaves the image's file.
	HostnamePath, HostsPath, ResolvConfPath string
	// ShmPath is bind-mounted at /dev/shm for containers in the pod's IPC namespace; "" gives each container a
	// private tmpfs (containerd binds the host's /dev/shm for host IPC: pass "/dev/shm" for that).
	ShmPath string
	// CgroupParent is the pod's cgroup: a cgroupfs path, or a systemd slice name when SystemdCgroup is set.
	CgroupParent  string
	SystemdCgroup bool
	// Sysctls are the pod's sysctls (linux.sysctls); only namespaced ones are accepted.
	Sysctls map[string]string
	// Privileged is linux.security_context.privileged of the pod: privileged containers need it.
	Privileged bool
}

// ContainerConfig mirrors runtime.v1.ContainerConfig.
type ContainerConfig struct {
	// Name is metadata.name; Image is image.image. Both only go into annotations.
	Name, Image string
	// Command and Args replace the image's entrypoint and cmd the way the kubelet documents it.
	Command []string
	Args    []string
	// WorkingDir defaults to the image's, then "/".
	WorkingDir string
	// Envs are added after the image's env, replacing variables of the same name.
	Envs    []KeyValue
	Mounts  []Mount
	Devices []Device
	// Tty allocates a terminal (stdin and stdin_once are handled by the monitor, not the spec).
	Tty   bool
	Linux *LinuxContainerConfig
}

// KeyValue mirrors runtime.v1.KeyValue (an environment variable).
type KeyValue struct {
	Key, Value string
}

// MountPropagation mirrors runtime.v1.MountPropagation.
type MountPropagation int32

const (
	PropagationPrivate         MountPropagation = 0 // rprivate
	PropagationHostToContainer MountPropagation = 1 // rslave
	PropagationBidirectional   MountPropagation = 2 // rshared
)

// Mount mirrors runtime.v1.Mount. An image volume (the proto's image field) is resolved by the caller into
// HostPath (the image's root or image_sub_path) with Readonly set.
type Mount struct {
	ContainerPath string
	// HostPath must exist; a symlink is followed.
	HostPath string
	Readonly bool
	// RecursiveReadOnly needs Readonly and PropagationPrivate.
	RecursiveReadOnly bool
	Propagation       MountPropagation
	// UidMappings and GidMappings make an idmapped mount; both or neither.
	UidMappings []IDMapping
	GidMappings []IDMapping
	// MountOptions are extra bind mount options (noexec, nodev, nosuid, …).
	MountOptions []string
}

// IDMapping mirrors runtime.v1.IDMapping.
type IDMapping struct {
	HostId, ContainerId, Length uint32
}

// Device mirrors runtime.v1.Device.
type Device struct {
	ContainerPath string
	// HostPath is a device node or a directory of them; a symlink is followed.
	HostPath string
	// Permissions are cgroup device permissions: one or more of r, w, m.
	Permissions string
}

// LinuxContainerConfig mirrors runtime.v1.LinuxContainerConfig.
type LinuxContainerConfig struct {
	Resources       *LinuxContainerResources
	SecurityContext *LinuxContainerSecurityContext
}

// LinuxContainerResources mirrors runtime.v1.LinuxContainerResources; 0 and "" mean not set.
type LinuxContainerResources struct {
	CpuPeriod, CpuQuota, CpuShares int64
	MemoryLimitInBytes             int64
	// OomScoreAdj is raised to Host.OOMScoreAdjMin when below it.
	OomScoreAdj            int64
	CpusetCpus, CpusetMems string
	HugepageLimits         []HugepageLimit
	// Unified are cgroup v2 files; rejected on a cgroup v1 host.
	Unified                map[string]string
	MemorySwapLimitInBytes int64
}

// HugepageLimit mirrors runtime.v1.HugepageLimit.
type HugepageLimit struct {
	PageSize string
	Limit    uint64
}

// LinuxContainerSecurityContext mirrors runtime.v1.LinuxContainerSecurityContext (selinux_options are ignored:
// berth does not label).
type LinuxContainerSecurityContext struct {
	Capabilities *Capability
	// Privileged gives all capabilities of the bounding set and all host devices, and lifts masked and read-only
	// paths, seccomp and AppArmor.
	Privileged       bool
	NamespaceOptions *NamespaceOption
	// RunAsUser, RunAsGroup and RunAsUsername override the image's USER (see ResolveUser).
	RunAsUser     *int64
	RunAsGroup    *int64
	RunAsUsername string
	// ReadonlyRootfs also makes the pod's /etc/hosts, /etc/hostname and /etc/resolv.conf read-only.
	ReadonlyRootfs           bool
	SupplementalGroups       []int64
	SupplementalGroupsPolicy SupplementalGroupsPolicy
	NoNewPrivs               bool
	// MaskedPaths and ReadonlyPaths are used as given; empty means the runtime's defaults, except in a pod with
	// its own user namespace, where empty means none (the kubelet's procMount: Unmasked).
	MaskedPaths   []string
	ReadonlyPaths []string
	// Seccomp wins over the deprecated SeccompProfilePath; nil and "" both mean unconfined.
	Seccomp  *SecurityProfile
	Apparmor *SecurityProfile
	// ApparmorProfile and SeccompProfilePath are the deprecated string forms: "runtime/default",
	// "docker/default" (seccomp), "unconfined", "localhost/<profile>".
	ApparmorProfile    string
	SeccompProfilePath string
}

// Capability mirrors runtime.v1.Capability. Names are given with or without "CAP_", in any case; "ALL" means
// every capability of Host.BoundingCaps.
type Capability struct {
	AddCapabilities        []string
	DropCapabilities       []string
	AddAmbientCapabilities []string
}

// NamespaceMode mirrors runtime.v1.NamespaceMode.
type NamespaceMode int32

const (
	NamespaceModePod       NamespaceMode = 0
	NamespaceModeContainer NamespaceMode = 1
	NamespaceModeNode      NamespaceMode = 2
	NamespaceModeTarget    NamespaceMode = 3
)

// NamespaceOption mirrors runtime.v1.NamespaceOption. nil means POD for everything.
type NamespaceOption struct {
	Network, Pid, Ipc NamespaceMode
	// TargetId is the container whose PID namespace pid mode TARGET joins (its path is SpecInput.TargetPIDNS).
	TargetId      string
	UsernsOptions *UserNamespace
}

// UserNamespace mirrors runtime.v1.UserNamespace: mode POD with one uid and one gid mapping, or NODE.
type UserNamespace struct {
	Mode NamespaceMode
	Uids []IDMapping
	Gids []IDMapping
}

// SupplementalGroupsPolicy mirrors runtime.v1.SupplementalGroupsPolicy.
type SupplementalGroupsPolicy int32

const (
	// SupplementalGroupsPolicyMerge adds the groups the image's /etc/group gives the user.
	SupplementalGroupsPolicyMerge SupplementalGroupsPolicy = 0
	// SupplementalGroupsPolicyStrict uses only the primary group and supplemental_groups.
	SupplementalGroupsPolicyStrict SupplementalGroupsPolicy = 1
)

// ProfileType mirrors runtime.v1.SecurityProfile_ProfileType.
type ProfileType int32

const (
	ProfileTypeRuntimeDefault ProfileType = 0
	ProfileTypeUnconfined     ProfileType = 1
	ProfileTypeLocalhost      ProfileType = 2
)

// SecurityProfile mirrors runtime.v1.SecurityProfile.
type SecurityProfile struct {
	ProfileType ProfileType
	// LocalhostRef is, for seccomp, the absolute path of a profile file; for AppArmor, a loaded profile's name.
	LocalhostRef string
}
