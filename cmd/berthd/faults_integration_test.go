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
			time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond)
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

// checkNothingOf checks that no mount and no process's cgroup names any of ids.
func checkNothingOf(t *testing.T, ids []string) {
	t.Helper()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	cgroups, _ := filepath.Glob("/proc/[0-9]*/cgroup")
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
				t.Errorf("process in a cgroup of %s left: %s", id, p)
			}
		}
	}
}
