//go:build integration

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podFilePid reads a pid file the monitor keeps in the pod dir (monitor.pid, pause.pid).
func podFilePid(t *testing.T, d *daemon, pod, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "state", "pods", pod, name))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// processesWith lists the pids whose command line holds arg.
func processesWith(arg string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), arg) {
			out = append(out, p)
		}
	}
	return out
}

// waitLostMonitor waits until pod is not ready and its container ctr exited because its monitor died, and no
// process of the container is left.
func waitLostMonitor(t *testing.T, rt runtimeapi.RuntimeServiceClient, pod, ctr, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var pst runtimeapi.PodSandboxState
	var cst *runtimeapi.ContainerStatus
	for time.Now().Before(deadline) {
		p, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
		if err != nil {
			t.Fatal(err)
		}
		pst, cst = p.Status.State, containerState(t, rt, ctr)
		if pst == runtimeapi.PodSandboxState_SANDBOX_NOTREADY && cst.State == runtimeapi.ContainerState_CONTAINER_EXITED &&
			len(processesWith(marker)) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pst != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pod is %v 10 s after its monitor died, want NOTREADY", pst)
	}
	if cst.State != runtimeapi.ContainerState_CONTAINER_EXITED || cst.Reason != "MonitorDied" || cst.ExitCode != 137 || cst.FinishedAt == 0 {
		t.Fatalf("container = %v reason %q exit %d finished %d, want EXITED MonitorDied 137", cst.State, cst.Reason, cst.ExitCode, cst.FinishedAt)
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Fatalf("the container's processes still run: %v", left)
	}
	list, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: pod}})
	if err != nil || len(list.Items) != 1 || list.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("ListPodSandbox = %v (%v), want the pod NOTREADY", list.GetItems(), err)
	}
}

// removeLostPod stops and removes a pod, then checks nothing of the daemon's pods is left on the host.
func removeLostPod(t *testing.T, d *daemon, rt runtimeapi.RuntimeServiceClient, pod string) {
	t.Helper()
	if _, err := rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	checkNoLeaks(t, d)
}

// A pod monitor killed with SIGKILL: berthd notices within seconds, reports the pod not ready and its container
// exited (MonitorDied, with an event), kills the container's processes, and the pod can be stopped and removed.
func TestMonitorDeath(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	events, err := rt.GetContainerEvents(ctx(t), &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pod, ctr, err := runContainer(ctx(t), rt, d.dir, "orphaned", "sleep", "1021")
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(podFilePid(t, d, pod, "monitor.pid"), syscall.SIGKILL)
	waitLostMonitor(t, rt, pod, ctr, "sleep 1021")
	for {
		ev, err := events.Recv()
		if err != nil {
			t.Fatalf("no stopped event for the container: %v", err)
		}
		if ev.ContainerId == ctr && ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
			break
		}
	}
	removeLostPod(t, d, rt, pod)
}

// A monitor that died while berthd was down is handled at berthd's start as a live death is.
func TestMonitorDeathWhileDown(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	pod, ctr, err := runContainer(ctx(t), rt, d.dir, "orphaned", "sleep", "1022")
	if err != nil {
		t.Fatal(err)
	}
	d.kill9(t)
	syscall.Kill(podFilePid(t, d, pod, "monitor.pid"), syscall.SIGKILL)
	d.start(t)
	rt, _ = d.clients(t)
	waitLostMonitor(t, rt, pod, ctr, "sleep 1022")
	removeLostPod(t, d, rt, pod)
}

// fillFS writes dir/filler until the filesystem is full.
func fillFS(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// A container that exits while the state dir's filesystem is full: berthd learns of the exit all the same.
func TestExitWithFullStateDir(t *testing.T) {
	d := newPodDaemon(t)
	state := filepath.Join(d.dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", state, "tmpfs", 0, "size=16m,mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(state, syscall.MNT_DETACH) })
	rt, _ := d.startWithTestImage(t)
	pod, ctr, err := runContainer(ctx(t), rt, d.dir, "quitter", "sh", "-c", "sleep 3; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	fillFS(t, state)
	deadline := time.Now().Add(15 * time.Second)
	st := containerState(t, rt, ctr)
	for st.State != runtimeapi.ContainerState_CONTAINER_EXITED && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		st = containerState(t, rt, ctr)
	}
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.FinishedAt == 0 {
		t.Fatalf("container is %v 12 s after it exited on a full state dir, want EXITED", st.State)
	}
	// The monitor reserved the exit record's space at create: the exit is the container's own.
	if st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("container exited %d (%s: %s), want 3 (Error)", st.ExitCode, st.Reason, st.Message)
	}
	os.Remove(filepath.Join(state, "filler"))
	if _, err := rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	d.stop(t)
	syscall.Unmount(filepath.Join(state, "pods"), syscall.MNT_DETACH)
	syscall.Unmount(state, syscall.MNT_DETACH)
	checkNoLeaks(t, d)
}

// A pod whose pause process died is not ready within seconds, and CreateContainer fails with FailedPrecondition
// instead of joining the namespaces of whatever process has the pause's pid now.
func TestCreateContainerPauseDead(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	pc := podConfig(d.dir, "pauseless")
	pc.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	pod := runTestPod(t, rt, pc)
	pause := podFilePid(t, d, pod, "pause.pid")
	syscall.Kill(pause, syscall.SIGKILL)
	// berthd notices the death itself, within seconds.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod,
		Config: containerConfig("late", "sleep", "1023"), SandboxConfig: pc})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("CreateContainer in a pod whose pause died: %v, want FailedPrecondition", err)
	}
	p, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pod is %v 10 s after its pause died, want NOTREADY", p.Status.State)
	}
	list, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod}})
	if err != nil || len(list.Containers) != 0 {
		t.Fatalf("containers after the failed create: %v (%v), want none", list.GetContainers(), err)
	}
	removeLostPod(t, d, rt, pod)
}
