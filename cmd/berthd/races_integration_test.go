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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestStopLongGraceDoesNotBlock: while a StopContainer with a 3600 s grace period waits for a container that ignores
// SIGTERM, ContainerStatus and ListContainers answer, and a StopContainer with timeout 0 (or a RemoveContainer) kills
// it at once; the first Stop then returns too.
func TestStopLongGraceDoesNotBlock(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	for _, second := range []string{"stop", "remove"} {
		t.Run(second, func(t *testing.T) {
			pod, ctr, err := runContainer(ctx(t), rt, d.dir, "term-"+second, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { removeTestPod(t, rt, pod) })
			first := make(chan error, 1)
			go func() {
				c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				_, err := rt.StopContainer(c, &runtimeapi.StopContainerRequest{ContainerId: ctr, Timeout: 3600})
				first <- err
			}()
			time.Sleep(time.Second) // the first Stop has sent SIGTERM and waits

			quick, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if st, err := rt.ContainerStatus(quick, &runtimeapi.ContainerStatusRequest{ContainerId: ctr}); err != nil ||
				st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("ContainerStatus during the graceful stop = %v, %v; want running", st.GetStatus().GetState(), err)
			}
			if _, err := rt.ListContainers(quick, &runtimeapi.ListContainersRequest{}); err != nil {
				t.Errorf("ListContainers during the graceful stop: %v", err)
			}

			c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			if second == "stop" {
				_, err = rt.StopContainer(c, &runtimeapi.StopContainerRequest{ContainerId: ctr, Timeout: 0})
			} else {
				_, err = rt.RemoveContainer(c, &runtimeapi.RemoveContainerRequest{ContainerId: ctr})
			}
			if err != nil {
				t.Fatalf("%s while a Stop with a 3600 s grace period waits: %v (after %s)", second, err, time.Since(start))
			}
			select {
			case err := <-first:
				if err != nil {
					t.Errorf("the graceful Stop: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the graceful Stop still waits after the container was killed")
			}
			if second == "stop" {
				if st := containerState(t, rt, ctr); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
					t.Errorf("after the kill: %v exit %d, want exited 137", st.State, st.ExitCode)
				}
			}
		})
	}
}

func removeTestPod(t *testing.T, rt runtimeapi.RuntimeServiceClient, id string) {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("RemovePodSandbox(%s): %v", id, err)
	}
}

// TestCreateContainerRacesRemovePod: CreateContainer calls racing RemovePodSandbox on one pod leave nothing of the
// removed pod: no container record, no mount, no process. Each create either made its container before the removal
// (which then removed it) or fails NotFound.
func TestCreateContainerRacesRemovePod(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	const rounds, creators = 20, 4
	made := 0
	for round := range rounds {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		pc := podConfig(d.dir, fmt.Sprintf("race-%d", round))
		pod, err := rt.RunPodSandbox(c, &runtimeapi.RunPodSandboxRequest{Config: pc})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		id := pod.PodSandboxId
		ids := make([]string, creators)
		var removeErr error
		var wg sync.WaitGroup
		for i := range creators {
			wg.Go(func() {
				time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond) // creates before, during and after the removal
				r, err := rt.CreateContainer(c, &runtimeapi.CreateContainerRequest{PodSandboxId: id,
					Config: containerConfig(fmt.Sprintf("c%d", i), "sleep", "1000"), SandboxConfig: pc})
				switch status.Code(err) {
				case codes.OK:
					ids[i] = r.ContainerId
				case codes.NotFound, codes.FailedPrecondition:
				default:
					t.Errorf("round %d: CreateContainer racing RemovePodSandbox: %v", round, err)
				}
			})
		}
		wg.Go(func() {
			time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
			_, removeErr = rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		})
		wg.Wait()
		if removeErr != nil {
			cancel()
			t.Fatalf("round %d: RemovePodSandbox: %v", round, removeErr)
		}
		list, err := rt.ListContainers(c, &runtimeapi.ListContainersRequest{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, ctr := range list.Containers {
			if ctr.PodSandboxId == id {
				t.Errorf("round %d: container %s of the removed pod is listed (%v)", round, ctr.Id, ctr.State)
			}
		}
		for _, ctr := range ids {
			if ctr == "" {
				continue
			}
			made++
			for _, p := range []string{filepath.Join(d.dir, "root", "containers", ctr+".json"), filepath.Join(d.dir, "root", "containers", ctr)} {
				if exists(p) {
					t.Errorf("round %d: %s of a container of the removed pod is left", round, p)
				}
			}
		}
		checkNothingOf(t, append(ids, id))
	}
	t.Logf("%d of %d containers were made before their pod was removed", made, rounds*creators)
	checkNoLeaks(t, d)
}

// checkNothingOf checks that no mount, no process's cgroup and no process's command line (a pod monitor's -dir)
// names any of ids.
func checkNothingOf(t *testing.T, ids []string) {
	t.Helper()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	cgroups, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	cgroups = append(cgroups, cmdlines...)
	for _, id := range ids {
		if id == "" {
			continue
		}
		for _, line := range strings.Split(string(mounts), "\n") {
			if strings.Contains(line, id) {
				t.Errorf("mount of %s left: %s", id, line)
			}
		}
		for _, p := range cgroups {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), id) {
				t.Errorf("process of %s left: %s", id, p)
			}
		}
	}
}

// TestStartupRollbackFailureServes: berthd killed while a pod's network is being set up, restarted while the CNI DEL
// fails, serves anyway; the half-made pod is listed NOT_READY, RemovePodSandbox fails while DEL does and, once DEL
// works again, removes it leaving nothing behind.
func TestStartupRollbackFailureServes(t *testing.T) {
	d, net := newNetworkDaemon(t, "2m", true)
	rt, _ := d.clients(t)
	gate := func(name string, on bool) {
		t.Helper()
		var err error
		if on {
			err = os.WriteFile(filepath.Join(d.dir, name), nil, 0o644)
		} else {
			err = os.Remove(filepath.Join(d.dir, name))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	gate("hold-add", true)
	go func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		runPod(c, rt, "hold", 31700) // fails: berthd is killed during it
	}()
	for deadline := time.Now().Add(30 * time.Second); !exists(filepath.Join(d.dir, "add-waiting")); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pod's CNI ADD did not start:\n%s", d.log)
		}
	}
	gate("fail-del", true)
	d.kill9(t)
	gate("hold-add", false) // the held ADD finishes into a closed pipe and exits

	d.start(t)
	rt, _ = d.clients(t)
	pods, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || pods.Items[0].Metadata.GetName() != "hold" {
		t.Fatalf("pods after the restart = %v, want the half-made pod, not ready", pods.Items)
	}
	id := pods.Items[0].Id
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err == nil || !strings.Contains(err.Error(), "induced DEL failure") {
		t.Errorf("RemovePodSandbox while DEL fails = %v, want the DEL's error", err)
	}
	gate("fail-del", false)
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox once DEL works: %v\n%s", err, d.log)
	}
	if pods, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{}); err != nil || len(pods.Items) != 0 {
		t.Errorf("pods after the removal: %v %v", pods.GetItems(), err)
	}
	net.assertClean(t, d, []string{id})
	checkNoLeaks(t, d)
}

// TestKillAfterImageAcquire: berthd killed (by its BERTH_TEST_CRASH_AT hook) after CreateContainer took the image
// reference and before it wrote the container record leaks no reference: after the restart no container is left and
// removing the image frees its content.
func TestKillAfterImageAcquire(t *testing.T) {
	d := newPodDaemon(t)
	d.env = []string{"BERTH_TEST_CRASH_AT=create-container:image-acquired"}
	rt, img := d.startWithTestImage(t)
	pc := podConfig(d.dir, "crash")
	pod, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId,
		Config: containerConfig("crash", "sleep", "1000"), SandboxConfig: pc}); err == nil {
		t.Fatal("CreateContainer succeeded: the crash hook did not fire")
	}
	d.cmd.Wait()
	if ws, ok := d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("berthd ended with %v, want killed by its crash hook:\n%s", d.cmd.ProcessState, d.log)
	}
	d.env = nil
	d.start(t)
	rt, img = d.clients(t)

	if list, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{}); err != nil || len(list.Containers) != 0 {
		t.Errorf("containers after the restart: %v %v", list.GetContainers(), err)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := img.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: testImage}}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"images", "snapshots", "containers"} {
		entries, _ := os.ReadDir(filepath.Join(d.dir, "root", dir))
		for _, e := range entries {
			t.Errorf("%s left in %s after the image's removal", e.Name(), dir)
		}
	}
	checkNoLeaks(t, d)
}

// TestFailedRollbackKeepsPod: a RunPodSandbox whose CNI ADD fails and whose rollback fails too (DEL fails) leaves
// the pod listed NOT_READY, and RemovePodSandbox finishes the rollback once DEL works.
func TestFailedRollbackKeepsPod(t *testing.T) {
	d, net := newNetworkDaemon(t, "2m", true)
	rt, _ := d.clients(t)
	failDel := filepath.Join(d.dir, "fail-del")
	if err := os.WriteFile(failDel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runPod(ctx(t), rt, "fail", 31701); err == nil || !strings.Contains(err.Error(), "induced DEL failure") {
		t.Fatalf("RunPodSandbox with a failing ADD and DEL = %v, want both errors", err)
	}
	pods, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pods after a failed rollback = %v, want the half-made pod, not ready", pods.Items)
	}
	id := pods.Items[0].Id
	if err := os.Remove(failDel); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox once DEL works: %v\n%s", err, d.log)
	}
	net.assertClean(t, d, []string{id})
	checkNoLeaks(t, d)
}
