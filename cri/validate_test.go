package cri

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// kubeletPod is a pod config as the kubelet sends it.
func kubeletPod() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web-7d4b9c-x2x", Namespace: "default", Uid: "3f2a9c1e-8d1b-4c55-9b0e-1a2b3c4d5e6f", Attempt: 1},
		Hostname:     "web-7d4b9c-x2x",
		LogDirectory: "/var/log/pods/default_web-7d4b9c-x2x_3f2a9c1e-8d1b-4c55-9b0e-1a2b3c4d5e6f",
		DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "fd00::a"},
			Searches: []string{"default.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"}},
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/burstable/pod3f2a9c1e",
			Sysctls: map[string]string{"net.ipv4.ip_local_port_range": "1024 65000"}},
	}
}

func kubeletContainer() *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: "nginx"},
		Image:      &runtimeapi.ImageSpec{Image: "nginx:1.27"},
		LogPath:    "nginx/0.log",
		WorkingDir: "/usr/share/nginx",
		Mounts: []*runtimeapi.Mount{{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount/", HostPath: "/var/lib/kubelet/pods/x/volumes/token"},
			{ContainerPath: "/data", Image: &runtimeapi.ImageSpec{Image: "data:1"}, ImageSubPath: "sub/dir", Readonly: true}},
		Devices: []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/audit.json"},
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}},
	}
}

func TestValidatePodConfig(t *testing.T) {
	if err := validatePodConfig(kubeletPod()); err != nil {
		t.Fatalf("the kubelet's pod: %v", err)
	}
	hostNet := kubeletPod()
	hostNet.Hostname = "Node-1.example.com" // a host-network pod gets the node's hostname, case and all
	if err := validatePodConfig(hostNet); err != nil {
		t.Fatalf("host network pod: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*runtimeapi.PodSandboxConfig)
		field  string
	}{
		"name with slash":      {func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "../../etc" }, "config.metadata.name"},
		"namespace dotdot":     {func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = ".." }, "config.metadata.namespace"},
		"namespace cni inject": {func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "x;IgnoreUnknown=1" }, "config.metadata.namespace"},
		"uid with NUL":         {func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "a\x00b" }, "config.metadata.uid"},
		"uid empty":            {func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" }, "config.metadata.uid"},
		"hostname too long":    {func(c *runtimeapi.PodSandboxConfig) { c.Hostname = strings.Repeat("a", 65) }, "config.hostname"},
		"hostname newline":     {func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "a\nb" }, "config.hostname"},
		"hostname underscore":  {func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "a_b" }, "config.hostname"},
		"hostname dash start":  {func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "-ab" }, "config.hostname"},
		"hostname empty label": {func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "a..b" }, "config.hostname"},
		"log dir relative":     {func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "var/log/pods/x" }, "config.log_directory"},
		"log dir dotdot":       {func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "/var/log/pods/../../etc" }, "config.log_directory"},
		"dns server not ip":    {func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Servers = []string{"10.0.0.1\nnameserver 6.6.6.6"} }, "config.dns_config.servers[0]"},
		"dns server name":      {func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Servers = []string{"8.8.8.8", "dns.google"} }, "config.dns_config.servers[1]"},
		"dns search newline":   {func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches = []string{"a\nnameserver 6.6.6.6"} }, "config.dns_config.searches[0]"},
		"dns search space":     {func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches = []string{"a b"} }, "config.dns_config.searches[0]"},
		"dns option newline": {func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig.Options = []string{"ndots:5", "x\r\nnameserver 1.2.3.4"}
		}, "config.dns_config.options[1]"},
		"dns option empty":      {func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Options = []string{""} }, "config.dns_config.options[0]"},
		"host ip not ip":        {func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[0].HostIp = "localhost" }, "config.port_mappings[0].host_ip"},
		"cgroup parent dotdot":  {func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods/../../system.slice" }, "config.linux.cgroup_parent"},
		"cgroup parent newline": {func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods\n/x" }, "config.linux.cgroup_parent"},
		"sysctl value newline": {func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1\n0"}
		}, `config.linux.sysctls["net.ipv4.ip_forward"]`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := kubeletPod()
			tc.change(cfg)
			err := validatePodConfig(cfg)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Fatalf("got %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}

func TestValidateContainerConfig(t *testing.T) {
	if err := validateContainerConfig(kubeletPod(), kubeletContainer()); err != nil {
		t.Fatalf("the kubelet's container: %v", err)
	}
	podNS := func(network, pid, ipc runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
		p := kubeletPod()
		p.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: network, Pid: pid, Ipc: ipc}}
		return p
	}
	const nsField = "config.linux.security_context.namespace_options"
	for name, tc := range map[string]struct {
		pod    *runtimeapi.PodSandboxConfig
		change func(*runtimeapi.ContainerConfig)
		field  string // "" for valid
	}{
		"name slash":              {nil, func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "a/b" }, "config.metadata.name"},
		"log path dotdot":         {nil, func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../../../etc/cron.d/x" }, "config.log_path"},
		"log path inner dotdot":   {nil, func(c *runtimeapi.ContainerConfig) { c.LogPath = "nginx/../../x.log" }, "config.log_path"},
		"log path absolute":       {nil, func(c *runtimeapi.ContainerConfig) { c.LogPath = "/etc/passwd" }, "config.log_path"},
		"log path inside dotdot":  {nil, func(c *runtimeapi.ContainerConfig) { c.LogPath = "nginx/../nginx/0.log" }, ""},
		"working dir relative":    {nil, func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "app" }, "config.working_dir"},
		"mount target relative":   {nil, func(c *runtimeapi.ContainerConfig) { c.Mounts[0].ContainerPath = "etc" }, "config.mounts[0].container_path"},
		"mount target dotdot":     {nil, func(c *runtimeapi.ContainerConfig) { c.Mounts[0].ContainerPath = "/../../host" }, "config.mounts[0].container_path"},
		"mount target NUL":        {nil, func(c *runtimeapi.ContainerConfig) { c.Mounts[0].ContainerPath = "/a\x00b" }, "config.mounts[0].container_path"},
		"mount target empty":      {nil, func(c *runtimeapi.ContainerConfig) { c.Mounts[0].ContainerPath = "" }, "config.mounts[0].container_path"},
		"mount host relative":     {nil, func(c *runtimeapi.ContainerConfig) { c.Mounts[0].HostPath = "etc" }, "config.mounts[0].host_path"},
		"image sub path escapes":  {nil, func(c *runtimeapi.ContainerConfig) { c.Mounts[1].ImageSubPath = "../../../etc" }, "config.mounts[1].image_sub_path"},
		"image sub path absolute": {nil, func(c *runtimeapi.ContainerConfig) { c.Mounts[1].ImageSubPath = "/etc" }, "config.mounts[1].image_sub_path"},
		"device host relative":    {nil, func(c *runtimeapi.ContainerConfig) { c.Devices[0].HostPath = "dev/fuse" }, "config.devices[0].host_path"},
		"device target dotdot":    {nil, func(c *runtimeapi.ContainerConfig) { c.Devices[0].ContainerPath = "/dev/../etc/x" }, "config.devices[0].container_path"},
		"device permissions":      {nil, func(c *runtimeapi.ContainerConfig) { c.Devices[0].Permissions = "rwx" }, "config.devices[0].permissions"},
		"seccomp ref newline": {nil, func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp.LocalhostRef = "/a\n/b"
		}, "config.linux.security_context.seccomp.localhost_ref"},
		"host network, pod's own": {nil, func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		}, nsField + ".network"},
		"host pid, pod's own": {podNS(runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD), func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_NODE
		}, nsField + ".pid"},
		"host ipc, pod's own": {nil, func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
		}, nsField + ".ipc"},
		"host namespaces, host pod": {podNS(runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_NODE), func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE,
				Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}
		}, ""},
		"own pid, host pod": {podNS(runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_NODE), func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_CONTAINER
		}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			pod := tc.pod
			if pod == nil {
				pod = kubeletPod()
			}
			cfg := proto.Clone(kubeletContainer()).(*runtimeapi.ContainerConfig)
			tc.change(cfg)
			err := validateContainerConfig(pod, cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Fatalf("got %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}
