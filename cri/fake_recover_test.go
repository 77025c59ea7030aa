package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// restart is a berthd restart over the same host and records.
func restart(t *testing.T, s *RuntimeServer, h *fakeHost) *RuntimeServer {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return startTestRuntimeServer(t, h)
}

// halfMadeContainer leaves what a berthd killed in the middle of CreateContainer leaves: a record in state creating,
// the image held, the rootfs mounted.
func halfMadeContainer(t *testing.T, s *RuntimeServer, h *fakeHost, podID string) containerRecord {
	t.Helper()
	pod := h.pods[podID]
	id := newID()
	rec := containerRecord{ID: id, PodID: podID, Config: testContainerConfig("half"), ImageID: fakeImageID(testImage),
		Bundle: filepath.Join(pod.dir, "containers", id)}
	if err := rec.transition(ctrCreating); err != nil {
		t.Fatal(err)
	}
	if err := s.containers.Create(id, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.opts.Images.Acquire(testImage, id); err != nil {
		t.Fatal(err)
	}
	if err := s.opts.Images.MountRootfsMapped(h.images[rec.ImageID].img, filepath.Join(s.writableLayer(id), "upper"),
		filepath.Join(s.writableLayer(id), "work"), filepath.Join(rec.Bundle, "rootfs"), nil); err != nil {
		t.Fatal(err)
	}
	return rec
}

// Recovery reconciles the records on disk with what the fakes report: half-made objects are rolled back (or kept
// when their rollback fails), pods without a runtime are not ready, containers their monitor does not know are
// exited, orphan runtimes are removed, and the network GC keeps only the ready pods' attachments.
func TestFakeRecovery(t *testing.T) {
	s, h := newTestRuntimeServer(t)
	ctx := context.Background()
	cfgA, cfgB := testPodConfig("a"), testPodConfig("b")
	podA, podB := runFakePod(t, s, h, cfgA), runFakePod(t, s, h, cfgB)
	created := createFakeContainer(t, s, podA, cfgA, testContainerConfig("created"))
	lost := createFakeContainer(t, s, podA, cfgA, testContainerConfig("lost"))
	inB := createFakeContainer(t, s, podB, cfgB, testContainerConfig("in-b"))
	half := halfMadeContainer(t, s, h, podA)
	orphan := &fakePod{h: h, cfg: h.pods[podA].cfg, dir: t.TempDir(), mon: &fakeMonitor{h: h, closed: make(chan struct{})}}
	orphan.cfg.ID = "orphan"
	h.mu.Lock()
	delete(h.ctrs, lost)      // the monitor forgot it
	delete(h.pods, podB)      // B's runtime dir is gone: a reboot
	h.pods["orphan"] = orphan // a runtime without a record
	h.mu.Unlock()

	s = restart(t, s, h)
	if got := ctrState(t, s, created); got != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container after restart: %v", got)
	}
	for _, id := range []string{lost, inB} {
		if rec, _ := s.containers.Get(id); rec.State != ctrExited || rec.Reason != reasonMonitorDied {
			t.Errorf("container %s without a monitor after restart: %s %q, want exited, %s", id, rec.State, rec.Reason, reasonMonitorDied)
		}
	}
	if _, ok := s.containers.Get(half.ID); ok {
		t.Error("the half-made container was not rolled back")
	}
	h.mu.Lock()
	if h.mounts[filepath.Join(half.Bundle, "rootfs")] || slices.Contains(h.images[half.ImageID].users, half.ID) {
		t.Error("the half-made container's mount or image use is left")
	}
	if _, ok := h.pods["orphan"]; ok {
		t.Error("the runtime without a record was not removed")
	}
	gc := h.gcLive[len(h.gcLive)-1]
	h.mu.Unlock()
	if want := []string{podA}; !slices.Equal(gc, want) {
		t.Errorf("network GC kept %v, want only the ready pod %v", gc, want)
	}
	if st := s.podStatus(mustPod(t, s, podB)); st.GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod without a runtime: %v, want not ready", st.GetState())
	}
	for _, id := range []string{podA, podB} {
		if _, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
	}
	assertNoContainerLeft(t, s, h)
}

func mustPod(t *testing.T, s *RuntimeServer, id string) podRecord {
	t.Helper()
	rec, ok := s.pods.Get(id)
	if !ok {
		t.Fatalf("pod %s has no record", id)
	}
	return rec
}

// A half-made pod or container whose rollback at start fails is kept, not ready or exited, and its removal retries
// the undo; a failed network GC does not stop the start.
func TestFakeRecoveryRollbackFails(t *testing.T) {
	s, h := newTestRuntimeServer(t)
	ctx := context.Background()
	cfg := testPodConfig("a")
	podID := runFakePod(t, s, h, cfg)
	half := halfMadeContainer(t, s, h, podID)
	if _, err := s.pods.Update(podID, func(p *podRecord) error { p.State = podCreating; return nil }); err != nil {
		t.Fatal(err)
	}
	h.fail(opUnmount, errDown)
	h.fail(opPodRemove, errDown)
	h.fail(opNetworkGC, errDown)
	s = restart(t, s, h)
	if rec, ok := s.containers.Get(half.ID); !ok || rec.State != ctrExited || rec.ExitCode != 255 {
		t.Fatalf("half-made container after a failed rollback: %+v, %v; want it kept, exited with 255", rec, ok)
	}
	if rec, ok := s.pods.Get(podID); !ok || rec.State != podNotReady {
		t.Fatalf("half-made pod after a failed rollback: %+v, %v; want it kept, not ready", rec, ok)
	}
	if _, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); grpcCode(err) != codes.Unavailable {
		t.Fatalf("RemovePodSandbox while the undo fails: %v", err)
	}
	h.fail(opUnmount, nil)
	h.fail(opPodRemove, nil)
	if _, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	assertNoContainerLeft(t, s, h)
	if len(s.pods.List()) != 0 || len(h.pods) != 0 {
		t.Fatalf("pods left: %v, runtimes %v", s.pods.List(), h.pods)
	}
}

// A kubelet that times out a slow RunPodSandbox or CreateContainer and retries gets the first call's object; a
// third call for the same name, after the result was delivered, is a conflict.
func TestFakeNameReservation(t *testing.T) {
	e := newRPCEnv(t)
	for name, tc := range map[string]struct {
		op   string
		call func(ctx context.Context) (string, error)
	}{
		"RunPodSandbox": {opPodCreate, func(ctx context.Context) (string, error) {
			r, err := e.s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: testPodConfig("slow")})
			return r.GetPodSandboxId(), err
		}},
		"CreateContainer": {opMonitorCreate, func(ctx context.Context) (string, error) {
			r, err := e.s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod,
				Config: testContainerConfig("slow"), SandboxConfig: e.podCfg})
			return r.GetContainerId(), err
		}},
	} {
		t.Run(name, func(t *testing.T) {
			release := e.h.hold(tc.op)
			defer release()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if _, err := tc.call(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("first call: %v, want its deadline", err)
			}
			type result struct {
				id  string
				err error
			}
			retried := make(chan result, 1)
			go func() {
				id, err := tc.call(context.Background())
				retried <- result{id, err}
			}()
			release()
			r := <-retried
			if r.err != nil || r.id == "" {
				t.Fatalf("retry: %q, %v; want the first call's object", r.id, r.err)
			}
			if _, err := tc.call(context.Background()); grpcCode(err) != codes.AlreadyExists {
				t.Fatalf("third call: %v, want AlreadyExists", err)
			}
		})
	}
}

// A failed CreateContainer publishes no event; a created container publishes CONTAINER_CREATED, and its removal
// CONTAINER_STOPPED (it is killed first) and CONTAINER_DELETED.
func TestFakeContainerEvents(t *testing.T) {
	e := newRPCEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := &eventStream{ctx: ctx, sent: make(chan *runtimeapi.ContainerEventResponse, 10)}
	done := make(chan error, 1)
	go func() { done <- e.s.GetContainerEvents(&runtimeapi.GetEventsRequest{}, stream) }()
	waitFor(t, e.s.events.active)
	e.h.fail(opMount, errDown)
	if err := createCall(newCtr)(e); grpcCode(err) != codes.Unavailable {
		t.Fatalf("CreateContainer: %v", err)
	}
	e.h.fail(opMount, nil)
	if err := createCall(newCtr)(e); err != nil {
		t.Fatal(err)
	}
	ev := receive(t, stream.sent)
	if ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT {
		t.Fatalf("first event %v, want only the successful create's", ev)
	}
	if err := removeCtrCall(func(*rpcEnv) string { return ev.ContainerId })(e); err != nil {
		t.Fatal(err)
	}
	for _, want := range []runtimeapi.ContainerEventType{runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT} {
		if got := receive(t, stream.sent); got.ContainerEventType != want || got.ContainerId != ev.ContainerId {
			t.Fatalf("event after remove %v of %s, want %v of %s", got.ContainerEventType, got.ContainerId, want, ev.ContainerId)
		}
	}
	cancel()
	<-done
}

// A pod whose ready record cannot be written is rolled back; when that rollback fails too, the pod stays listed with
// its runtime known, so that RemovePodSandbox removes the runtime. (It used to drop both errors: the runtime was
// forgotten, and RemovePodSandbox deleted the record and left it.)
func TestFakeRunPodReadyRecordFails(t *testing.T) {
	s, h := newTestRuntimeServer(t)
	ctx := context.Background()
	release := h.hold(opPodCreate)
	defer release()
	done := make(chan error, 1)
	go func() {
		_, err := s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: testPodConfig("web")})
		done <- err
	}()
	waitFor(t, func() bool { return len(s.pods.List()) == 1 }) // the creating record is written; the pod is held
	podsDir := filepath.Join(s.opts.RootDir, "pods")
	if err := os.Rename(podsDir, podsDir+".away"); err != nil { // no record of the pod can be written now
		t.Fatal(err)
	}
	h.fail(opPodRemove, errDown)
	release()
	if err := <-done; err == nil {
		t.Fatal("RunPodSandbox succeeded without its record")
	}
	if err := os.Rename(podsDir+".away", podsDir); err != nil {
		t.Fatal(err)
	}
	h.fail(opPodRemove, nil)
	pods := s.pods.List()
	if len(pods) != 1 {
		t.Fatalf("pods after a failed rollback: %v, want the pod kept", pods)
	}
	if _, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pods[0].ID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if len(h.pods) != 0 || len(s.pods.List()) != 0 {
		t.Fatalf("left after RemovePodSandbox: runtimes %v, records %v", h.pods, s.pods.List())
	}
}
