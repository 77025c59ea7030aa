//go:build integration

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostilePod runs a host-network pod (no CNI needed) with its own IPC namespace and a log directory, and pulls the
// test image.
func hostilePod(t *testing.T) (*daemon, runtimeapi.RuntimeServiceClient, *runtimeapi.PodSandboxConfig, string) {
	t.Helper()
	needImages(t)
	d := newDaemon(t, "")
	rt, _ := d.startWithTestImage(t)
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "hostile", Namespace: "test", Uid: "hostile-uid"},
		LogDirectory: filepath.Join(d.dir, "logs"),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE,
				Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}}},
	}
	return d, rt, podCfg, runTestPod(t, rt, podCfg)
}

func hostileContainer(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: testImage},
		Command:  []string{"sh", "-c", "echo container-output; sleep 3600"},
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE,
				Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}}},
	}
}

// wantCode fails unless err is a gRPC error of code whose message names field.
func wantCode(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), field) {
		t.Fatalf("got %v, want %s naming %s", err, code, field)
	}
}

// stillServes checks that berthd answers after a hostile call.
func stillServes(t *testing.T, rt runtimeapi.RuntimeServiceClient) {
	t.Helper()
	if _, err := rt.Version(ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("berthd stopped serving: %v", err)
	}
}

// TestHostileCRISeccompProfile names hostile Localhost seccomp profiles: a FIFO (it hung CreateContainer forever),
// /dev/zero (it grew berthd without end), a file over the 1 MiB cap, a directory. Each fails at once with
// InvalidArgument naming the field, and berthd stays small and serving.
func TestHostileCRISeccompProfile(t *testing.T) {
	d, rt, podCfg, pod := hostilePod(t)
	fifo := filepath.Join(d.dir, "profile.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Should berthd read the FIFO (before the fix it did, for ever), let it go, so the pod can be removed.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	big := filepath.Join(d.dir, "big.json")
	// A valid profile, padded past the cap: read whole, it would be accepted.
	if err := os.WriteFile(big, append([]byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), bytes.Repeat([]byte(" "), 1<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"fifo", fifo, "not a regular file"}, {"dev-zero", "/dev/zero", "not a regular file"},
		{"over-cap", big, "over the limit"}, {"directory", d.dir, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hostileContainer(tc.name)
			cfg.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: tc.path}
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := rt.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: cfg})
			wantCode(t, err, codes.InvalidArgument, "linux.security_context.seccomp.localhost_ref")
			if !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("error %q does not say %q", status.Convert(err).Message(), tc.want)
			}
			stillServes(t, rt)
		})
	}
	if rss := rssKiB(t, d.cmd.Process.Pid); rss > 200<<10 {
		t.Errorf("berthd RSS %d KiB after hostile profiles", rss)
	}
}

func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n := 0
			for _, c := range strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) {
				n = n*10 + int(c-'0')
			}
			return n
		}
	}
	return 0
}

// TestHostileCRILogPath: log_path stays inside log_directory. A ".." escape and an absolute path are InvalidArgument
// naming config.log_path; a symlink the log file's name or a directory on the way to it (someone could plant one
// in the kubelet's log dir) is never followed by the root monitor, so container output never reaches a host file.
func TestHostileCRILogPath(t *testing.T) {
	d, rt, podCfg, pod := hostilePod(t)
	logDir := podCfg.LogDirectory
	outside := filepath.Join(d.dir, "host")
	for _, dir := range []string{logDir, outside, filepath.Join(logDir, "real")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(logDir, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(logDir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, logPath, field string
	}{
		{"dotdot", "../host/victim", "config.log_path"},
		{"absolute", victim, "config.log_path"},
		{"symlink-file", "link.log", "log_path"},
		{"symlink-dir", "linkdir/victim", "log_path"},
		{"ok", "real/0.log", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hostileContainer(tc.name)
			cfg.LogPath = tc.logPath
			c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: cfg})
			if tc.field != "" {
				if err == nil {
					// Before the fix the container ran and wrote to the victim: show it.
					rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId})
					time.Sleep(time.Second)
				}
				wantCode(t, err, codes.InvalidArgument, tc.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				b, _ := os.ReadFile(filepath.Join(logDir, "real", "0.log"))
				if strings.Contains(string(b), " stdout F container-output") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("log file holds %q", b)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := rt.ReopenContainerLog(ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: c.ContainerId}); err != nil {
				t.Fatalf("ReopenContainerLog: %v", err)
			}
		})
	}
	if b, _ := os.ReadFile(victim); string(b) != "host file\n" {
		t.Errorf("the root monitor wrote container output to a host file: %q", b)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("files made outside the log directory: %v", entries)
	}
}

// TestHostileCRIInput sends pod and container configs whose strings would become hostile paths, resolv.conf lines
// or host namespaces: each is InvalidArgument naming the field, and nothing is made.
func TestHostileCRIInput(t *testing.T) {
	_, rt, podCfg, pod := hostilePod(t)
	for _, tc := range []struct {
		name   string
		change func(*runtimeapi.PodSandboxConfig)
		field  string
	}{
		{"hostname-newline", func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "a\nb" }, "config.hostname"},
		{"dns-server-injection", func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.0.0.1\nnameserver 6.6.6.6"}}
		}, "config.dns_config.servers[0]"},
		{"namespace-slash", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "../../x" }, "config.metadata.namespace"},
	} {
		t.Run("pod-"+tc.name, func(t *testing.T) {
			cfg := &runtimeapi.PodSandboxConfig{
				Metadata: &runtimeapi.PodSandboxMetadata{Name: tc.name, Namespace: "test", Uid: tc.name},
				Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
			}
			tc.change(cfg)
			p, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err == nil {
				rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.PodSandboxId})
				rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.PodSandboxId})
			}
			wantCode(t, err, codes.InvalidArgument, tc.field)
		})
	}
	for _, tc := range []struct {
		name   string
		change func(*runtimeapi.ContainerConfig)
		field  string
	}{
		{"host-ipc", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
		}, "config.linux.security_context.namespace_options.ipc"},
		{"host-pid", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_NODE
		}, "config.linux.security_context.namespace_options.pid"},
		{"mount-target-dotdot", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/../../etc", HostPath: "/tmp"}}
		}, "config.mounts[0].container_path"},
	} {
		t.Run("container-"+tc.name, func(t *testing.T) {
			cfg := hostileContainer(tc.name)
			tc.change(cfg)
			_, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: cfg})
			wantCode(t, err, codes.InvalidArgument, tc.field)
		})
	}
	list, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 0 {
		t.Errorf("containers left: %v, %v", list, err)
	}
}

// TestHostileCRIExecSyncOutput: a command writing 12 MiB to stdout and 12 MiB to stderr gets a response a client
// with the kubelet's 16 MiB receive limit can read: output truncated and marked, the exit code the command's.
func TestHostileCRIExecSyncOutput(t *testing.T) {
	d, rt, podCfg, pod := hostilePod(t)
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: hostileContainer("exec")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	// The kubelet's CRI client receives at most 16 MiB (k8s.io/cri-client maxMsgSize).
	conn, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kubelet := runtimeapi.NewRuntimeServiceClient(conn)
	res, err := kubelet.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId, Timeout: 20,
		Cmd: []string{"sh", "-c", "head -c 12582912 /dev/zero; head -c 12582912 /dev/zero >&2; exit 3"}})
	if err != nil {
		t.Fatalf("ExecSync: %v", err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3: the command did not run to its end", res.ExitCode)
	}
	if n := len(res.Stdout) + len(res.Stderr); n > 16<<20 || !strings.Contains(string(res.Stdout)+string(res.Stderr), "truncated") {
		t.Errorf("%d bytes of output, truncation marked: %v", n, strings.Contains(string(res.Stdout)+string(res.Stderr), "truncated"))
	}
}
