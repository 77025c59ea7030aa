//go:build integration

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestSeccompRuntimeDefault runs the same syscall in real containers under each seccomp profile: unshare(2) of a user
// namespace, which the kernel allows any process but the runtime's default profile blocks for a container without
// CAP_SYS_ADMIN. It fails with EPERM under RuntimeDefault and works unconfined, and privileged ignores the profile.
func TestSeccompRuntimeDefault(t *testing.T) {
	needImages(t)
	d := newDaemon(t, "")
	rt, _ := d.startWithTestImage(t)
	// Host network: no CNI needed. Privileged, so that one of its containers may be.
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "seccomp", Namespace: "test", Uid: "seccomp-uid"},
		LogDirectory: filepath.Join(d.dir, "logs"),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			Privileged:       true,
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	pod := runTestPod(t, rt, podCfg)

	tests := []struct {
		name       string
		seccomp    *runtimeapi.SecurityProfile
		privileged bool
		blocked    bool
	}{
		{"runtime-default", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, false, true},
		{"unconfined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, false, false},
		{"no-profile", nil, false, false},
		{"runtime-default-privileged", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
				Config: &runtimeapi.ContainerConfig{
					Metadata: &runtimeapi.ContainerMetadata{Name: tc.name},
					Image:    &runtimeapi.ImageSpec{Image: testImage},
					Command:  []string{"sleep", "3600"},
					LogPath:  tc.name + ".log",
					Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
						Seccomp: tc.seccomp, Privileged: tc.privileged}},
				}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				t.Fatal(err)
			}
			res, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId,
				Cmd: []string{"unshare", "-U", "true"}, Timeout: 10})
			if err != nil {
				t.Fatal(err)
			}
			blocked := res.ExitCode != 0
			if blocked != tc.blocked || (blocked && !strings.Contains(string(res.Stderr), "Operation not permitted")) {
				t.Errorf("unshare -U: exit %d, stderr %q; want blocked=%v (EPERM)", res.ExitCode, res.Stderr, tc.blocked)
			}
		})
	}
}

// TestUserNamespacePod runs a container in a pod with its own user namespace (KEP-127) and an image volume: the
// container's root is the namespace's 0, host uid 100000; the image's files, in its rootfs and in the volume, belong
// to that root through idmapped layers; what it writes lands on disk as host uid 100000; the volume is read-only.
func TestUserNamespacePod(t *testing.T) {
	needImages(t)
	d := newDaemon(t, "")
	// The pod's root is no one on the host: the way to the state dir must be open to others.
	for _, dir := range []string{d.dir, filepath.Dir(d.dir)} {
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	d.start(t)
	rt, img := d.clients(t)
	st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.RuntimeHandlers[0].GetFeatures().GetUserNamespaces() {
		t.Skip("user namespaces are not advertised on this host")
	}
	if _, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: testImage}}); err != nil {
		t.Fatal(err)
	}
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	nsOpts := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE,
		UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "userns", Namespace: "test", Uid: "userns-uid"},
		LogDirectory: filepath.Join(d.dir, "logs"),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: nsOpts}},
	}
	run, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	pod := run.PodSandboxId
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "userns"},
			Image:    &runtimeapi.ImageSpec{Image: testImage},
			Command:  []string{"sleep", "3600"},
			LogPath:  "userns.log",
			Mounts: []*runtimeapi.Mount{{ContainerPath: "/mnt/vol", Readonly: true, Image: &runtimeapi.ImageSpec{Image: testImage},
				ImageSubPath: "etc"}},
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: nsOpts}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd      string
		want     string
		wantFail bool
	}{
		{cmd: "cat /proc/self/uid_map", want: "0 100000 65536"},
		{cmd: "id -u; stat -c %u:%g /etc/passwd /mnt/vol/passwd /", want: "0 0:0 0:0 0:0"},
		{cmd: "echo x > /written && chown 33:33 /written && stat -c %u /written", want: "33"},
		{cmd: "touch /mnt/vol/new", wantFail: true},
	} {
		res, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId, Cmd: []string{"sh", "-c", tc.cmd}, Timeout: 10})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(strings.Fields(string(res.Stdout)), " ")
		if (res.ExitCode != 0) != tc.wantFail || !tc.wantFail && got != tc.want {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q (fail=%v)", tc.cmd, res.ExitCode, got, res.Stderr, tc.want, tc.wantFail)
		}
	}
	var written syscall.Stat_t
	if err := syscall.Stat(filepath.Join(d.dir, "root", "containers", c.ContainerId, "upper", "written"), &written); err != nil {
		t.Fatal(err)
	}
	if written.Uid != 100033 || written.Gid != 100033 {
		t.Errorf("written file owned by %d:%d on the host, want 100033:100033", written.Uid, written.Gid)
	}
	cs, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: c.ContainerId})
	if err != nil {
		t.Fatal(err)
	}
	if ms := cs.Status.GetMounts(); len(ms) != 1 || !strings.HasPrefix(ms[0].GetImage().GetImageRef(), "sha256:") {
		t.Errorf("status mounts %v: want the volume's image digest", ms)
	}

	if _, err := rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(mounts)) {
		if strings.Contains(line, filepath.Join(d.dir, "state", "pods")+"/") {
			t.Errorf("left mounted: %s", line)
		}
	}
}
