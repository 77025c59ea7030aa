package specgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

var update = flag.Bool("update", false, "rewrite the golden specs in testdata/")

// fakeFS is a host with a few files, symlinks, shared mounts and devices.
type fakeFS struct {
	files   map[string]string
	links   map[string]string
	mounts  map[string]MountPoint
	devices map[string][]specs.LinuxDevice // by host path; a directory lists its devices
}

func (f *fakeFS) EvalSymlinks(p string) (string, error) {
	if strings.HasPrefix(p, "/missing") {
		return "", &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	if t, ok := f.links[p]; ok {
		return t, nil
	}
	return p, nil
}

func (f *fakeFS) MountPoint(p string) (MountPoint, error) {
	for mp, m := range f.mounts {
		if within(p, mp) {
			return m, nil
		}
	}
	return MountPoint{Path: "/"}, nil
}

func (f *fakeFS) Devices(hostPath, containerPath string) ([]specs.LinuxDevice, error) {
	devs, ok := f.devices[hostPath]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: hostPath, Err: fs.ErrNotExist}
	}
	out := append([]specs.LinuxDevice(nil), devs...)
	for i := range out {
		switch {
		case containerPath == "":
		case out[i].Path == hostPath:
			out[i].Path = containerPath
		default:
			out[i].Path = filepath.Join(containerPath, strings.TrimPrefix(out[i].Path, hostPath+"/"))
		}
	}
	return out, nil
}

func (f *fakeFS) ReadFile(p string) ([]byte, error) {
	if b, ok := f.files[p]; ok {
		return []byte(b), nil
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

// AppArmorLoaded: the kernel has my-profile loaded.
func (f *fakeFS) AppArmorLoaded(name string) (bool, error) { return name == "my-profile", nil }

func dev(path, typ string, major, minor int64) specs.LinuxDevice {
	mode := fs.FileMode(0o666)
	var id uint32
	return specs.LinuxDevice{Path: path, Type: typ, Major: major, Minor: minor, FileMode: &mode, UID: &id, GID: &id}
}

const blockChmodProfile = `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}]}`

// testHost is like this VM: root without CAP_SYS_RESOURCE, cgroup v1, no AppArmor.
func testHost() Host {
	return Host{
		BoundingCaps:      capNames(0x000001fffeffffff),
		OOMScoreAdjMin:    -998,
		SwapAccounting:    true,
		Hugetlb:           true,
		RecursiveReadOnly: true,
		FS: &fakeFS{
			files: map[string]string{
				"/var/lib/seccomp/block-chmod.json": blockChmodProfile,
				"/var/lib/seccomp/broken.json":      `{"defaultAction": `,
			},
			links:  map[string]string{"/data/link": "/data/real"},
			mounts: map[string]MountPoint{"/shared": {Path: "/shared", Shared: true}, "/slave": {Path: "/slave", Slave: true}},
			devices: map[string][]specs.LinuxDevice{
				"/dev/fuse": {dev("/dev/fuse", "c", 10, 229)},
				"/dev/snd":  {dev("/dev/snd/timer", "c", 116, 33), dev("/dev/snd/seq", "c", 116, 1)},
				"/dev":      {dev("/dev/null", "c", 1, 3), dev("/dev/fuse", "c", 10, 229), dev("/dev/sda", "b", 8, 0)},
			},
		},
	}
}

func baseInput() SpecInput {
	const pod = "/run/berth/pods/p1"
	return SpecInput{
		ID: "c1",
		Pod: Pod{
			ID: "p1", Name: "web", Namespace: "default", UID: "0b5e", Hostname: "web-0",
			NetNS: pod + "/ns/net", IPCNS: pod + "/ns/ipc", UTSNS: pod + "/ns/uts", PIDNS: "/proc/4242/ns/pid",
			HostnamePath: pod + "/hostname", HostsPath: pod + "/hosts", ResolvConfPath: pod + "/resolv.conf",
			ShmPath: pod + "/shm", CgroupParent: "/kubepods/besteffort/podp1",
		},
		Image: ocispec.ImageConfig{
			Cmd: []string{"sh"},
			Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"},
		},
		Config: ContainerConfig{Name: "app", Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
		User:   &specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}},
		Host:   testHost(),
	}
}

// sc returns the input's security context, creating it.
func sc(in *SpecInput) *LinuxContainerSecurityContext {
	if in.Config.Linux == nil {
		in.Config.Linux = &LinuxContainerConfig{}
	}
	if in.Config.Linux.SecurityContext == nil {
		in.Config.Linux.SecurityContext = &LinuxContainerSecurityContext{}
	}
	return in.Config.Linux.SecurityContext
}

func nsOpts(in *SpecInput) *NamespaceOption {
	s := sc(in)
	if s.NamespaceOptions == nil {
		s.NamespaceOptions = &NamespaceOption{}
	}
	return s.NamespaceOptions
}

func i64(v int64) *int64 { return &v }

var userns = &UserNamespace{
	Mode: NamespaceModePod,
	Uids: []IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}},
	Gids: []IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}},
}

// goldenCases produce a spec each, compared with testdata/<name>.json.
var goldenCases = []struct {
	name string
	mod  func(*SpecInput)
}{
	{"default", func(*SpecInput) {}},
	{"command-replaces-entrypoint-and-cmd", func(in *SpecInput) {
		in.Image.Entrypoint, in.Image.Cmd = []string{"/entry"}, []string{"--cmd"}
		in.Config.Command = []string{"/bin/top"}
	}},
	{"args-replace-cmd", func(in *SpecInput) {
		in.Image.Entrypoint, in.Image.Cmd = []string{"/entry"}, []string{"--cmd"}
		in.Config.Args = []string{"--arg", "1"}
	}},
	{"command-and-args", func(in *SpecInput) {
		in.Image.Entrypoint, in.Image.Cmd = []string{"/entry"}, []string{"--cmd"}
		in.Config.Command, in.Config.Args = []string{"/bin/sh"}, []string{"-c", "echo hi"}
	}},
	{"empty-entrypoint", func(in *SpecInput) {
		in.Image.Entrypoint, in.Image.Cmd = []string{""}, []string{"/pause"}
	}},
	{"env-merge-tty-workdir", func(in *SpecInput) {
		in.Image.Env = []string{"LANG=C.UTF-8", "HOME=/root", "DROPPED"}
		in.Image.WorkingDir = "/srv"
		in.Config.Envs = []KeyValue{{"HOME", "/home/app"}, {"EXTRA", "a=b"}, {"HOSTNAME", "override"}}
		in.Config.Tty = true
		in.Config.WorkingDir = "/work"
	}},
	{"image-workdir", func(in *SpecInput) { in.Image.WorkingDir = "/srv" }},
	{"mounts", func(in *SpecInput) {
		in.Config.Mounts = []Mount{
			{ContainerPath: "/data/sub", HostPath: "/data/real/sub"},
			{ContainerPath: "/data", HostPath: "/data/link", Readonly: true},
			{ContainerPath: "/shared", HostPath: "/shared/vol", Propagation: PropagationBidirectional},
			{ContainerPath: "/slave", HostPath: "/slave/vol", Propagation: PropagationHostToContainer},
			{ContainerPath: "/rro", HostPath: "/ro", Readonly: true, RecursiveReadOnly: true},
			{ContainerPath: "/opts", HostPath: "/opts", MountOptions: []string{"noexec", "nosuid", "nodev"}},
			{ContainerPath: "/idmapped", HostPath: "/idmapped", UidMappings: userns.Uids, GidMappings: userns.Gids},
		}
	}},
	{"host-to-container-only", func(in *SpecInput) {
		in.Config.Mounts = []Mount{{ContainerPath: "/slave", HostPath: "/slave/vol", Propagation: PropagationHostToContainer}}
	}},
	{"cri-mount-replaces-pod-file-and-dev", func(in *SpecInput) {
		in.Config.Mounts = []Mount{
			{ContainerPath: "/etc/hosts", HostPath: "/custom/hosts", Readonly: true},
			{ContainerPath: "/dev", HostPath: "/dev"},
		}
	}},
	{"devices", func(in *SpecInput) {
		in.Config.Devices = []Device{
			{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"},
			{ContainerPath: "/dev/sound", HostPath: "/dev/snd", Permissions: "r"},
		}
	}},
	{"resources", func(in *SpecInput) {
		in.Config.Linux = &LinuxContainerConfig{Resources: &LinuxContainerResources{
			CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 256 << 20,
			OomScoreAdj: 1000, CpusetCpus: "0-1", CpusetMems: "0",
			HugepageLimits: []HugepageLimit{{PageSize: "2MB", Limit: 1 << 30}},
		}}
	}},
	{"resources-swap-oom-floor", func(in *SpecInput) {
		in.Config.Linux = &LinuxContainerConfig{Resources: &LinuxContainerResources{
			MemoryLimitInBytes: 256 << 20, MemorySwapLimitInBytes: 512 << 20, OomScoreAdj: -999,
		}}
	}},
	{"resources-unified-v2", func(in *SpecInput) {
		in.Host.CgroupV2 = true
		in.Config.Linux = &LinuxContainerConfig{Resources: &LinuxContainerResources{
			MemoryLimitInBytes: 1 << 30, Unified: map[string]string{"memory.high": "900000000"},
		}}
	}},
	{"caps-add-drop", func(in *SpecInput) {
		sc(in).Capabilities = &Capability{AddCapabilities: []string{"NET_ADMIN", "cap_sys_time"}, DropCapabilities: []string{"NET_RAW", "CAP_MKNOD"}}
	}},
	{"caps-add-all", func(in *SpecInput) {
		sc(in).Capabilities = &Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"CHOWN"}}
	}},
	{"caps-drop-all", func(in *SpecInput) {
		sc(in).Capabilities = &Capability{DropCapabilities: []string{"all"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}
	}},
	{"caps-ambient", func(in *SpecInput) {
		in.User = &specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000}}
		sc(in).Capabilities = &Capability{AddAmbientCapabilities: []string{"NET_BIND_SERVICE", "NET_ADMIN"}}
	}},
	{"privileged", func(in *SpecInput) {
		in.Pod.Privileged = true
		s := sc(in)
		s.Privileged = true
		s.Capabilities = &Capability{DropCapabilities: []string{"ALL"}}
		s.Seccomp = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: "/var/lib/seccomp/block-chmod.json"}
		s.MaskedPaths = []string{"/proc/kcore"}
		in.Config.Devices = []Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rw"}}
	}},
	{"no-new-privs-readonly-rootfs", func(in *SpecInput) {
		s := sc(in)
		s.NoNewPrivs = true
		s.ReadonlyRootfs = true
	}},
	{"masked-readonly-paths-given", func(in *SpecInput) {
		s := sc(in)
		s.MaskedPaths = []string{"/bin/ls"}
		s.ReadonlyPaths = []string{"/tmp"}
	}},
	{"seccomp-runtime-default", func(in *SpecInput) {
		sc(in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}
	}},
	{"seccomp-unconfined", func(in *SpecInput) {
		sc(in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeUnconfined}
	}},
	{"seccomp-localhost", func(in *SpecInput) {
		sc(in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: "/var/lib/seccomp/block-chmod.json"}
	}},
	{"seccomp-deprecated-docker-default", func(in *SpecInput) {
		sc(in).SeccompProfilePath = "docker/default"
	}},
	{"seccomp-deprecated-localhost", func(in *SpecInput) {
		sc(in).SeccompProfilePath = "localhost//var/lib/seccomp/block-chmod.json"
	}},
	{"apparmor-enabled-default", func(in *SpecInput) {
		in.Host.AppArmor, in.Host.AppArmorDefaultProfile = true, "berth-default"
	}},
	{"apparmor-enabled-localhost", func(in *SpecInput) {
		in.Host.AppArmor = true
		sc(in).Apparmor = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: "localhost/my-profile"}
	}},
	{"apparmor-disabled-ignored", func(in *SpecInput) {
		sc(in).Apparmor = &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}
	}},
	{"pid-container", func(in *SpecInput) { nsOpts(in).Pid = NamespaceModeContainer }},
	{"pid-target", func(in *SpecInput) {
		o := nsOpts(in)
		o.Pid, o.TargetId = NamespaceModeTarget, "c0"
		in.TargetPIDNS = "/proc/777/ns/pid"
	}},
	{"host-namespaces", func(in *SpecInput) {
		in.Pod.NetNS, in.Pod.IPCNS, in.Pod.UTSNS, in.Pod.PIDNS, in.Pod.ShmPath = "", "", "", "", ""
		in.Pod.Hostname = "node-1"
		*nsOpts(in) = NamespaceOption{Network: NamespaceModeNode, Pid: NamespaceModeNode, Ipc: NamespaceModeNode}
	}},
	{"userns-pod", func(in *SpecInput) {
		in.Pod.UsernsOptions = userns
		in.Pod.UserNS = "/run/berth/pods/p1/ns/user"
		nsOpts(in).UsernsOptions = userns
	}},
	{"userns-pod-host-network", func(in *SpecInput) {
		in.Pod.UsernsOptions = userns
		in.Pod.NetNS, in.Pod.UTSNS = "", ""
		o := nsOpts(in)
		o.UsernsOptions, o.Network = userns, NamespaceModeNode
	}},
	{"userns-node", func(in *SpecInput) {
		in.Pod.UsernsOptions = &UserNamespace{Mode: NamespaceModeNode}
		nsOpts(in).UsernsOptions = &UserNamespace{Mode: NamespaceModeNode}
	}},
	{"sysctls", func(in *SpecInput) {
		in.Pod.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net/ipv4/ip_forward": "1"}
	}},
	{"systemd-cgroup", func(in *SpecInput) {
		in.Pod.SystemdCgroup, in.Pod.CgroupParent = true, "kubepods-besteffort-podp1.slice"
	}},
	{"cgroup-v2-namespace", func(in *SpecInput) { in.Host.CgroupV2 = true }},
}

func TestSpecGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.mod(&in)
			s, err := Spec(in)
			if err != nil {
				t.Fatalf("Spec: %v", err)
			}
			got := goldenJSON(t, s)
			file := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("spec differs from %s (run with -update to accept):\n%s", file, lineDiff(string(want), string(got)))
			}
		})
	}
}

// goldenJSON renders a spec for the golden files. The runtime default seccomp profile is written as
// "RuntimeDefault": it is moby's (tested in seccomp_test.go), hundreds of lines long and depends on the
// architecture.
func goldenJSON(t *testing.T, s *specs.Spec) []byte {
	t.Helper()
	var isDefault bool
	if s.Linux.Seccomp != nil {
		def, err := defaultSeccomp(s.Process.Capabilities.Bounding)
		if err != nil {
			t.Fatal(err)
		}
		isDefault = reflect.DeepEqual(s.Linux.Seccomp, def)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if isDefault {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["linux"].(map[string]any)["seccomp"] = "RuntimeDefault"
		if b, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

func TestSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*SpecInput)
		is    error
		field string
	}{
		{"no command", func(in *SpecInput) { in.Image.Cmd = nil }, errdefs.ErrInvalidArgument, "command"},
		{"rro without readonly", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/x", RecursiveReadOnly: true}}
		}, errdefs.ErrInvalidArgument, "mounts[0].recursive_read_only"},
		{"rro with host-to-container", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/slave/x", Readonly: true, RecursiveReadOnly: true, Propagation: PropagationHostToContainer}}
		}, errdefs.ErrInvalidArgument, "mounts[0].recursive_read_only"},
		{"rro with bidirectional", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/x"}, {ContainerPath: "/mnt2", HostPath: "/shared/x", Readonly: true, RecursiveReadOnly: true, Propagation: PropagationBidirectional}}
		}, errdefs.ErrInvalidArgument, "mounts[1].recursive_read_only"},
		{"rro on a kernel without mount_setattr", func(in *SpecInput) {
			in.Host.RecursiveReadOnly = false
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/x", Readonly: true, RecursiveReadOnly: true}}
		}, errdefs.ErrFailedPrecondition, "mounts[0].recursive_read_only"},
		{"bidirectional on private mount", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/slave/x", Propagation: PropagationBidirectional}}
		}, errdefs.ErrFailedPrecondition, "mounts[0].propagation"},
		{"host-to-container on private mount", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/private", Propagation: PropagationHostToContainer}}
		}, errdefs.ErrFailedPrecondition, "mounts[0].propagation"},
		{"missing host path", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/missing/dir"}}
		}, errdefs.ErrInvalidArgument, "mounts[0].host_path"},
		{"relative container path", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "mnt", HostPath: "/x"}}
		}, errdefs.ErrInvalidArgument, "mounts[0].container_path"},
		{"unsupported mount option", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/x", MountOptions: []string{"rw"}}}
		}, errdefs.ErrInvalidArgument, "mounts[0].mount_options"},
		{"idmap with uids only", func(in *SpecInput) {
			in.Config.Mounts = []Mount{{ContainerPath: "/mnt", HostPath: "/x", UidMappings: userns.Uids}}
		}, errdefs.ErrInvalidArgument, "mounts[0].uidMappings"},
		{"device permissions", func(in *SpecInput) {
			in.Config.Devices = []Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rx"}}
		}, errdefs.ErrInvalidArgument, "devices[0].permissions"},
		{"missing device", func(in *SpecInput) {
			in.Config.Devices = []Device{{ContainerPath: "/dev/nope", HostPath: "/dev/nope", Permissions: "rw"}}
		}, errdefs.ErrInvalidArgument, "devices[0].host_path"},
		{"unified on cgroup v1", func(in *SpecInput) {
			in.Config.Linux = &LinuxContainerConfig{Resources: &LinuxContainerResources{Unified: map[string]string{"memory.high": "1"}}}
		}, errdefs.ErrInvalidArgument, "linux.resources.unified"},
		{"negative shares", func(in *SpecInput) {
			in.Config.Linux = &LinuxContainerConfig{Resources: &LinuxContainerResources{CpuShares: -1}}
		}, errdefs.ErrInvalidArgument, "linux.resources.cpu_shares"},
		{"unknown capability", func(in *SpecInput) {
			sc(in).Capabilities = &Capability{AddCapabilities: []string{"FLY"}}
		}, errdefs.ErrInvalidArgument, "linux.security_context.capabilities.add_capabilities"},
		{"capability outside bounding set", func(in *SpecInput) {
			sc(in).Capabilities = &Capability{AddCapabilities: []string{"SYS_RESOURCE"}}
		}, errdefs.ErrInvalidArgument, "linux.security_context.capabilities.add_capabilities"},
		{"privileged container in unprivileged pod", func(in *SpecInput) { sc(in).Privileged = true },
			errdefs.ErrInvalidArgument, "linux.security_context.privileged"},
		{"seccomp localhost missing", func(in *SpecInput) {
			sc(in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: "/var/lib/seccomp/nope.json"}
		}, errdefs.ErrInvalidArgument, "linux.security_context.seccomp.localhost_ref"},
		{"seccomp localhost invalid", func(in *SpecInput) {
			sc(in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: "/var/lib/seccomp/broken.json"}
		}, errdefs.ErrInvalidArgument, "linux.security_context.seccomp.localhost_ref"},
		{"seccomp localhost relative", func(in *SpecInput) {
			sc(in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: "profile.json"}
		}, errdefs.ErrInvalidArgument, "linux.security_context.seccomp.localhost_ref"},
		{"seccomp deprecated unknown", func(in *SpecInput) { sc(in).SeccompProfilePath = "strict" },
			errdefs.ErrInvalidArgument, "linux.security_context.seccomp_profile_path"},
		{"apparmor localhost without apparmor", func(in *SpecInput) {
			sc(in).Apparmor = &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: "my-profile"}
		}, errdefs.ErrFailedPrecondition, "linux.security_context.apparmor"},
		{"pid pod without pod pid namespace", func(in *SpecInput) { in.Pod.PIDNS = "" },
			errdefs.ErrFailedPrecondition, "namespace_options.pid"},
		{"pid target without target", func(in *SpecInput) {
			o := nsOpts(in)
			o.Pid, o.TargetId = NamespaceModeTarget, "c0"
		}, errdefs.ErrInvalidArgument, "namespace_options.target_id"},
		{"network target", func(in *SpecInput) { nsOpts(in).Network = NamespaceModeTarget },
			errdefs.ErrInvalidArgument, "namespace_options.network"},
		{"userns differs from pod", func(in *SpecInput) { nsOpts(in).UsernsOptions = userns },
			errdefs.ErrInvalidArgument, "namespace_options.userns_options"},
		{"userns container mode", func(in *SpecInput) {
			u := &UserNamespace{Mode: NamespaceModeContainer}
			in.Pod.UsernsOptions = u
			nsOpts(in).UsernsOptions = u
		}, errdefs.ErrInvalidArgument, "namespace_options.userns_options.mode"},
		{"sysctl not namespaced", func(in *SpecInput) { in.Pod.Sysctls = map[string]string{"kernel.panic": "1"} },
			errdefs.ErrInvalidArgument, `linux.sysctls["kernel.panic"]`},
		{"net sysctl with host network", func(in *SpecInput) {
			in.Pod.NetNS = ""
			in.Pod.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, errdefs.ErrInvalidArgument, `linux.sysctls["net.ipv4.ip_forward"]`},
		{"ipc sysctl with host ipc", func(in *SpecInput) {
			nsOpts(in).Ipc = NamespaceModeNode
			in.Pod.Sysctls = map[string]string{"kernel.shmmax": "1"}
		}, errdefs.ErrInvalidArgument, `linux.sysctls["kernel.shmmax"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.mod(&in)
			_, err := Spec(in)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("err = %q, does not name %q", err, tc.field)
			}
		})
	}
}

func TestSpecNeedsUser(t *testing.T) {
	in := baseInput()
	in.User = nil
	if _, err := Spec(in); err == nil {
		t.Fatal("Spec without a resolved user succeeded")
	}
}

func TestValidateUserNamespace(t *testing.T) {
	one := []IDMapping{{ContainerId: 0, HostId: 1000, Length: 100000}}
	for _, tc := range []struct {
		name string
		u    *UserNamespace
		ok   bool
	}{
		{"nil", nil, true},
		{"node", &UserNamespace{Mode: NamespaceModeNode}, true},
		{"pod", &UserNamespace{Mode: NamespaceModePod, Uids: one, Gids: one}, true},
		{"node with mappings", &UserNamespace{Mode: NamespaceModeNode, Uids: one, Gids: one}, false},
		{"pod without gids", &UserNamespace{Mode: NamespaceModePod, Uids: one}, false},
		{"more than one mapping", &UserNamespace{Mode: NamespaceModePod,
			Uids: []IDMapping{{0, 1000, 100000}, {0, 2000, 100000}}, Gids: one}, false},
		{"container id 0 not mapped", &UserNamespace{Mode: NamespaceModePod,
			Uids: []IDMapping{{HostId: 1000, ContainerId: 1, Length: 100000}}, Gids: one}, false},
		{"zero length", &UserNamespace{Mode: NamespaceModePod, Uids: []IDMapping{{HostId: 1000}}, Gids: one}, false},
		{"container", &UserNamespace{Mode: NamespaceModeContainer}, false},
		{"target", &UserNamespace{Mode: NamespaceModeTarget}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateUserNamespace(tc.u)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && (!errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "userns_options")) {
				t.Errorf("err = %v, want InvalidArgument naming userns_options", err)
			}
		})
	}
}

func TestSpecDoesNotAliasInput(t *testing.T) {
	in := baseInput()
	in.Pod.Sysctls = map[string]string{"kernel.sem": "1 2 3 4"}
	s, err := Spec(in)
	if err != nil {
		t.Fatal(err)
	}
	s.Linux.Sysctl["kernel.sem"] = "changed"
	s.Process.User.AdditionalGids[0] = 99
	if in.Pod.Sysctls["kernel.sem"] != "1 2 3 4" || in.User.AdditionalGids[0] != 0 {
		t.Fatal("changing the spec changed the input")
	}
}

func BenchmarkSpecRuntimeDefault(b *testing.B) {
	in := baseInput()
	sc(&in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}
	for b.Loop() {
		if _, err := Spec(in); err != nil {
			b.Fatal(err)
		}
	}
}
