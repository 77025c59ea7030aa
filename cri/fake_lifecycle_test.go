package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

const testImage = "registry.test/busybox:1"

func testPodConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: filepath.Join(os.TempDir(), "berth-fake-logs", name),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

func testContainerConfig(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: testImage},
		Command:  []string{"sleep", "inf"},
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

// runFakePod pulls the test image and runs a pod on s.
func runFakePod(t testing.TB, s *RuntimeServer, h *fakeHost, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	if _, err := (fakeImages{h}).Pull(context.Background(), testImage, nil); err != nil {
		t.Fatal(err)
	}
	r, err := s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return r.GetPodSandboxId()
}

func createFakeContainer(t testing.TB, s *RuntimeServer, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	r, err := s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	return r.GetContainerId()
}

func ctrState(t *testing.T, s *RuntimeServer, id string) runtimeapi.ContainerState {
	t.Helper()
	r, err := s.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return r.GetStatus().GetState()
}

func TestFakeLifecycle(t *testing.T) {
	s, h := newTestRuntimeServer(t)
	ctx := context.Background()
	podCfg := testPodConfig("web")
	podID := runFakePod(t, s, h, podCfg)
	id := createFakeContainer(t, s, podID, podCfg, testContainerConfig("app"))
	if got := ctrState(t, s, id); got != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("after create: %v", got)
	}
	if _, err := s.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if got := ctrState(t, s, id); got != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after start: %v", got)
	}
	if _, err := s.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st, err := s.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetStatus().GetExitCode() != 143 {
		t.Fatalf("after stop: %v, exit code %d; want exited with 143 (SIGTERM)", st.GetStatus().GetState(), st.GetStatus().GetExitCode())
	}
	if _, err := s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := s.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); status.Code(toStatus(err)) != codes.NotFound {
		t.Fatalf("ContainerStatus after remove: %v, want NotFound", err)
	}
	assertNoContainerLeft(t, s, h)
	if _, err := s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if pods, err := s.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(pods.GetItems()) != 0 {
		t.Fatalf("ListPodSandbox after remove: %v, %v", pods.GetItems(), err)
	}
	if len(h.pods) != 0 {
		t.Fatalf("pod runtimes left: %v", h.pods)
	}
}

// assertNoContainerLeft checks that nothing of any container is left: record, writable layer, monitor state, mount,
// bundle, image use.
func assertNoContainerLeft(t *testing.T, s *RuntimeServer, h *fakeHost) {
	t.Helper()
	if list := s.containers.List(); len(list) != 0 {
		t.Errorf("container records left: %v", list)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.opts.RootDir, "containers")); len(entries) != 0 {
		t.Errorf("left in the containers dir (records, writable layers): %v", entries)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ctrs) != 0 || len(h.mounts) != 0 {
		t.Errorf("left on the host: containers %v, mounts %v", h.ctrs, h.mounts)
	}
	for _, fi := range h.images {
		if len(fi.users) != 0 {
			t.Errorf("image %s still used by %v", fi.img.ID, fi.users)
		}
	}
	for _, p := range h.pods {
		if entries, _ := os.ReadDir(filepath.Join(p.dir, "containers")); len(entries) != 0 {
			t.Errorf("bundles left: %v", entries)
		}
	}
}

// A failing step beneath cri/ reaches the client with the code of its error, and the create is undone: no record,
// no mount, no image use; the name is free again.
func TestFakeCreateContainerFails(t *testing.T) {
	tests := map[string]struct {
		op   string
		err  error
		code codes.Code
	}{
		"image mount":    {op: opMount, err: fmt.Errorf("overlay: %w", errdefs.ErrUnavailable), code: codes.Unavailable},
		"image acquire":  {op: opAcquire, err: errdefs.NotFound("image", testImage), code: codes.NotFound},
		"monitor create": {op: opMonitorCreate, err: errdefs.InvalidArgument("bundle", "bad"), code: codes.InvalidArgument},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, h := newTestRuntimeServer(t)
			podCfg := testPodConfig("web")
			podID := runFakePod(t, s, h, podCfg)
			h.fail(tc.op, tc.err)
			_, err := s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: podID,
				Config: testContainerConfig("app"), SandboxConfig: podCfg})
			if got := status.Code(toStatus(err)); got != tc.code {
				t.Fatalf("CreateContainer: %v (%v), want %v", got, err, tc.code)
			}
			if list, err := s.ListContainers(context.Background(), &runtimeapi.ListContainersRequest{}); err != nil || len(list.GetContainers()) != 0 {
				t.Fatalf("ListContainers: %v, %v", list.GetContainers(), err)
			}
			assertNoContainerLeft(t, s, h)
			h.fail(tc.op, nil)
			createFakeContainer(t, s, podID, podCfg, testContainerConfig("app")) // the name was released
		})
	}
}

// A panic beneath a creation, which runs detached from the request (names.go: no interceptor recovers it there), is
// an Internal error for the caller, the creation is undone, the name is free again and berthd keeps serving.
func TestFakeCreationPanics(t *testing.T) {
	t.Run("CreateContainer", func(t *testing.T) {
		s, h := newTestRuntimeServer(t)
		podCfg := testPodConfig("web")
		podID := runFakePod(t, s, h, podCfg)
		h.fail(opMonitorCreate, fakePanic("bug in the monitor client"))
		_, err := s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: podID,
			Config: testContainerConfig("app"), SandboxConfig: podCfg})
		if got := status.Code(toStatus(err)); got != codes.Internal {
			t.Fatalf("CreateContainer: %v (%v), want Internal", got, err)
		}
		assertNoContainerLeft(t, s, h)
		h.fail(opMonitorCreate, nil)
		createFakeContainer(t, s, podID, podCfg, testContainerConfig("app"))
	})
	t.Run("RunPodSandbox", func(t *testing.T) {
		s, h := newTestRuntimeServer(t)
		h.fail(opPodCreate, fakePanic("bug in the sandbox manager"))
		if _, err := (fakeImages{h}).Pull(context.Background(), testImage, nil); err != nil {
			t.Fatal(err)
		}
		podCfg := testPodConfig("web")
		_, err := s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: podCfg})
		if got := status.Code(toStatus(err)); got != codes.Internal {
			t.Fatalf("RunPodSandbox: %v (%v), want Internal", got, err)
		}
		// What the panic left is unknown: the pod stays listed, not ready, for RemovePodSandbox and recovery.
		pods, err := s.ListPodSandbox(context.Background(), &runtimeapi.ListPodSandboxRequest{})
		if err != nil || len(pods.GetItems()) != 1 || pods.GetItems()[0].GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Fatalf("ListPodSandbox after a panic: %v, %v; want the pod, not ready", pods.GetItems(), err)
		}
		if _, err := s.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pods.GetItems()[0].GetId()}); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
		h.fail(opPodCreate, nil)
		runFakePod(t, s, h, podCfg)
	})
}

// A create whose rollback fails (the rootfs will not unmount) keeps the container's record, listed exited, instead of
// leaving a mount nothing knows of; RemoveContainer then retries the clean-up and leaves nothing.
func TestFakeCreateRollbackFails(t *testing.T) {
	s, h := newTestRuntimeServer(t)
	ctx := context.Background()
	podCfg := testPodConfig("web")
	podID := runFakePod(t, s, h, podCfg)
	h.fail(opMonitorCreate, fmt.Errorf("monitor: %w", errdefs.ErrUnavailable))
	h.fail(opUnmount, fmt.Errorf("umount: busy: %w", errdefs.ErrUnavailable))
	if _, err := s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID,
		Config: testContainerConfig("app"), SandboxConfig: podCfg}); status.Code(toStatus(err)) != codes.Unavailable {
		t.Fatalf("CreateContainer: %v, want Unavailable", err)
	}
	list, err := s.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.GetContainers()) != 1 || list.GetContainers()[0].GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("ListContainers after a failed rollback: %v, %v; want the container, exited", list.GetContainers(), err)
	}
	id := list.GetContainers()[0].GetId()
	if _, err := s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err == nil {
		t.Fatal("RemoveContainer succeeded while the rootfs does not unmount")
	}
	h.fail(opMonitorCreate, nil)
	h.fail(opUnmount, nil)
	if _, err := s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	assertNoContainerLeft(t, s, h)
	createFakeContainer(t, s, podID, podCfg, testContainerConfig("app")) // the name was released
}
