//go:build integration

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const testImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// testCgroupParent holds this test process's pods, so a leak check sees only them (other daemons may run here):
// a cgroupfs path, or with the systemd driver a slice right below the root slice (-.slice), as the kubelet's
// kubepods.slice is.
var testCgroupParent = func() string {
	if systemdDriver() {
		return fmt.Sprintf("berth_itest_%d.slice", os.Getpid())
	}
	return fmt.Sprintf("/berth-itest-%d", os.Getpid())
}()

// kill9 kills berthd as a crash would, and waits for it.
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

func podConfig(dir, name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "recovery", Uid: name + "-uid"},
		LogDirectory: filepath.Join(dir, "logs", name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: testCgroupParent, SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}},
	}
}

func containerConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: testImage},
		Command:  cmd,
		LogPath:  name + ".log",
	}
}

// runContainer makes a pod with one started container and returns their ids.
func runContainer(ctx context.Context, rt runtimeapi.RuntimeServiceClient, dir, name string, cmd ...string) (string, string, error) {
	pc := podConfig(dir, name)
	pod, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pc})
	if err != nil {
		return "", "", err
	}
	c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId,
		Config: containerConfig(name, cmd...), SandboxConfig: pc})
	if err != nil {
		return pod.PodSandboxId, "", err
	}
	_, err = rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId})
	return pod.PodSandboxId, c.ContainerId, err
}

func containerState(t *testing.T, rt runtimeapi.RuntimeServiceClient, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	st, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus(%s): %v", id, err)
	}
	return st.Status
}

// TestKillRecovery kills berthd with SIGKILL at random moments while pods and containers are being created, started,
// stopped and removed in parallel, restarts it, and checks that it tells the truth: a long-running container keeps
// running and logging, a container that exited while berthd was down reports its exit code, no half-made object is
// visible, and once everything is removed nothing is left on the host.
func TestKillRecovery(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	_, logger, err := runContainer(ctx(t), rt, d.dir, "logger", "sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done")
	if err != nil {
		t.Fatal(err)
	}
	loggerLog := filepath.Join(d.dir, "logs", "logger", "logger.log")

	for round := range 3 {
		// A container that exits with 7 while berthd is down.
		_, quitter, err := runContainer(ctx(t), rt, d.dir, fmt.Sprintf("quitter-%d", round), "sh", "-c", "sleep 1; exit 7")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				churn(rt, d.dir, fmt.Sprintf("churn-%d-%d", round, w), stop)
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		d.kill9(t)
		close(stop)
		wg.Wait()
		sizeAtKill := fileSize(loggerLog)
		time.Sleep(1500 * time.Millisecond) // the quitter exits while berthd is down
		d.start(t)
		rt, _ = d.clients(t)

		if st := containerState(t, rt, logger); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("round %d: logger is %v after the restart", round, st.State)
		}
		if fileSize(loggerLog) <= sizeAtKill {
			t.Errorf("round %d: the logger's log stopped growing while berthd was down", round)
		}
		st := containerState(t, rt, quitter)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 || st.FinishedAt == 0 {
			t.Errorf("round %d: quitter = %v exit %d finished %d, want exited 7", round, st.State, st.ExitCode, st.FinishedAt)
		}
		checkConsistent(t, rt)
	}

	// Everything removed: nothing may be left behind.
	pods, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Fatalf("remove pod %s: %v", p.Id, err)
		}
	}
	checkNoLeaks(t, d)
}

// churn creates, starts, stops and removes pods until stop is closed; errors are expected once berthd is killed.
func churn(rt runtimeapi.RuntimeServiceClient, dir, name string, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		pod, ctr, err := runContainer(c, rt, dir, fmt.Sprintf("%s-%d", name, i), "sleep", "1000")
		if err == nil {
			_, err = rt.StopContainer(c, &runtimeapi.StopContainerRequest{ContainerId: ctr, Timeout: 1})
		}
		if err == nil {
			_, err = rt.RemoveContainer(c, &runtimeapi.RemoveContainerRequest{ContainerId: ctr})
		}
		if err == nil && pod != "" {
			_, err = rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod})
		}
		cancel()
		if err != nil {
			return
		}
	}
}

// checkConsistent checks that every listed object answers its status call with the same state.
func checkConsistent(t *testing.T, rt runtimeapi.RuntimeServiceClient) {
	t.Helper()
	pods, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		st, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.Id})
		if err != nil || st.Status.State != p.State {
			t.Errorf("pod %s listed %v, status %v (%v)", p.Id, p.State, st.GetStatus().GetState(), err)
		}
	}
	ctrs, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs.Containers {
		if st := containerState(t, rt, c.Id); st.State != c.State {
			t.Errorf("container %s listed %v, status %v", c.Id, c.State, st.State)
		}
	}
}

// checkNoLeaks checks the host holds nothing of the daemon's pods: mounts (but the shared <state>/pods itself),
// monitor processes, the pods' cgroup parent.
func checkNoLeaks(t *testing.T, d *daemon) {
	t.Helper()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	podsDir := filepath.Join(d.dir, "state", "pods")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], d.dir) && f[4] != podsDir {
			t.Errorf("mount left: %s", f[4])
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), d.dir) && !strings.Contains(string(b), "berth.toml") {
			t.Errorf("process left: %s: %q", p, b)
		}
	}
	// berth made the pods' cgroup parent, so it removes it with the last pod: in each v1 hierarchy, or in the one
	// cgroup2 tree (cgroup.controllers at the top: a pure cgroup v2 host, such as the node VMs).
	dirs := []string{"memory", "cpu", "pids", "unified"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dirs = []string{""}
	}
	for _, ctl := range dirs {
		// A slice below -.slice has its cgroup at /<name>.
		if p := filepath.Join("/sys/fs/cgroup", ctl, "/"+testCgroupParent); exists(p) {
			t.Errorf("cgroup left: %s", p)
		}
	}
	if systemdDriver() {
		checkUnitStopped(t, testCgroupParent)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
