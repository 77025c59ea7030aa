//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestAppArmorDefaultProfile runs real containers on a host that enforces AppArmor (the node VMs) and reads the
// profile their processes and their execs run under: berth-default, generated and loaded by berthd, with no profile
// and RuntimeDefault; none when unconfined or privileged. Status says so.
func TestAppArmorDefaultProfile(t *testing.T) {
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err != nil || !bytes.HasPrefix(b, []byte("Y")) {
		t.Skip("AppArmor is not enabled on this host")
	}
	needImages(t)
	d := newDaemon(t, "")
	rt, _ := d.startWithTestImage(t)
	st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Enabled        bool   `json:"enabled"`
		DefaultProfile string `json:"defaultProfile"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["apparmor"]), &info); err != nil || !info.Enabled || info.DefaultProfile != "berth-default" {
		t.Errorf("Status apparmor %q (%v), want enabled with berth-default", st.GetInfo()["apparmor"], err)
	}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "apparmor", Namespace: "test", Uid: "apparmor-uid"},
		LogDirectory: filepath.Join(d.dir, "logs"),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			Privileged:       true,
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER}}},
	}
	pod := runTestPod(t, rt, podCfg)
	for _, tc := range []struct {
		name       string
		apparmor   *runtimeapi.SecurityProfile
		privileged bool
		want       string
	}{
		{"no-profile", nil, false, "berth-default (enforce)"},
		{"runtime-default", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, false, "berth-default (enforce)"},
		{"unconfined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, false, "unconfined"},
		{"privileged", nil, true, "unconfined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
				Config: &runtimeapi.ContainerConfig{
					Metadata: &runtimeapi.ContainerMetadata{Name: tc.name},
					Image:    &runtimeapi.ImageSpec{Image: testImage},
					Command:  []string{"sleep", "3600"},
					LogPath:  tc.name + ".log",
					Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
						Apparmor: tc.apparmor, Privileged: tc.privileged}},
				}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				t.Fatal(err)
			}
			res, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId,
				Cmd: []string{"cat", "/proc/1/attr/current", "/proc/self/attr/current"}, Timeout: 10})
			if err != nil {
				t.Fatal(err)
			}
			// The main process (pid 1: its own PID namespace) and the exec.
			got := strings.Split(strings.TrimRight(strings.ReplaceAll(string(res.Stdout), "\x00", ""), "\n"), "\n")
			if res.ExitCode != 0 || len(got) != 2 || got[0] != tc.want || got[1] != tc.want {
				t.Errorf("main process and exec run under %q (exit %d, stderr %q), want %q", got, res.ExitCode, res.Stderr, tc.want)
			}
		})
	}
}
