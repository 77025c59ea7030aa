package cri

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// rpcEnv is a runtime service over fakes with a ready pod, a created and a running container.
type rpcEnv struct {
	s                     *RuntimeServer
	h                     *fakeHost
	podCfg                *runtimeapi.PodSandboxConfig
	pod, created, running string
}

func newRPCEnv(t *testing.T) *rpcEnv {
	s, h := newTestRuntimeServer(t)
	e := &rpcEnv{s: s, h: h, podCfg: testPodConfig("web")}
	e.pod = runFakePod(t, s, h, e.podCfg)
	e.created = createFakeContainer(t, s, e.pod, e.podCfg, testContainerConfig("created"))
	e.running = createFakeContainer(t, s, e.pod, e.podCfg, testContainerConfig("running"))
	if _, err := s.StartContainer(context.Background(), &runtimeapi.StartContainerRequest{ContainerId: e.running}); err != nil {
		t.Fatal(err)
	}
	return e
}

// host is everything the fakes and the records hold, to compare before and after a failed call.
func (e *rpcEnv) host() string {
	var b strings.Builder
	for _, p := range e.s.pods.List() {
		fmt.Fprintf(&b, "pod %s %s\n", p.ID, p.State)
	}
	for _, c := range e.s.containers.List() {
		fmt.Fprintf(&b, "container %s %s\n", c.ID, c.State)
	}
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	var lines []string
	for id := range e.h.pods {
		lines = append(lines, "runtime "+id)
	}
	for id, c := range e.h.ctrs {
		lines = append(lines, fmt.Sprintf("monitor container %s %s", id, c.status))
	}
	for m := range e.h.mounts {
		lines = append(lines, "mount "+m)
	}
	for id, fi := range e.h.images {
		lines = append(lines, fmt.Sprintf("image %s users %v", id, slices.Sorted(slices.Values(fi.users))))
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, "\n"))
	return b.String()
}

func (e *rpcEnv) podState(t *testing.T, id string) runtimeapi.PodSandboxState {
	t.Helper()
	r, err := e.s.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	return r.GetStatus().GetState()
}

func (e *rpcEnv) podNamed(name string) (podRecord, bool) {
	for _, p := range e.s.pods.List() {
		if p.Config.GetMetadata().GetName() == name {
			return p, true
		}
	}
	return podRecord{}, false
}

func grpcCode(err error) codes.Code { return status.Code(toStatus(err)) }

var (
	errDown = fmt.Errorf("injected: %w", errdefs.ErrUnavailable)
	// errBusy is for monitor.Remove, whose Unavailable means a dead monitor, which has nothing left to remove.
	errBusy = errdefs.FailedPrecondition("injected: container busy")
)

// rpcFailure is one failing dependency call (or bad request) of one RPC.
type rpcFailure struct {
	fails []string // the fake calls that fail with err (errDown when nil)
	err   error
	call  func(e *rpcEnv) error
	code  codes.Code
	// after checks the state after the failed call; nil: nothing changed at all (nothing half-made, no record, no
	// reservation, every undo run).
	after func(t *testing.T, e *rpcEnv)
	// retry, once the fakes work again, must succeed; nil: call again, when fails is set.
	retry func(e *rpcEnv) error
}

func runPodCall(name string) func(e *rpcEnv) error {
	return func(e *rpcEnv) error {
		_, err := e.s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: testPodConfig(name)})
		return err
	}
}

func createCall(cfg func() *runtimeapi.ContainerConfig) func(e *rpcEnv) error {
	return func(e *rpcEnv) error {
		_, err := e.s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod,
			Config: cfg(), SandboxConfig: e.podCfg})
		return err
	}
}

func newCtr() *runtimeapi.ContainerConfig { return testContainerConfig("new") }

// newCtrWithAbsentVolume has two image volumes, the second of an image that was not pulled.
func newCtrWithAbsentVolume() *runtimeapi.ContainerConfig {
	c := newCtrWithImageVolume()
	c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/absent", Readonly: true,
		Image: &runtimeapi.ImageSpec{Image: "registry.test/absent:1"}})
	return c
}

func newCtrWithImageVolume() *runtimeapi.ContainerConfig {
	c := testContainerConfig("new")
	c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/img", Readonly: true, Image: &runtimeapi.ImageSpec{Image: testImage}}}
	return c
}

func removeCtrCall(id func(e *rpcEnv) string) func(e *rpcEnv) error {
	return func(e *rpcEnv) error {
		_, err := e.s.RemoveContainer(context.Background(), &runtimeapi.RemoveContainerRequest{ContainerId: id(e)})
		return err
	}
}

func removePodCall(e *rpcEnv) error {
	_, err := e.s.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod})
	return err
}

func running(e *rpcEnv) string { return e.running }

// wantCtr checks a container's state after a failed call.
func wantCtr(id func(e *rpcEnv) string, want runtimeapi.ContainerState) func(t *testing.T, e *rpcEnv) {
	return func(t *testing.T, e *rpcEnv) {
		if got := ctrState(t, e.s, id(e)); got != want {
			t.Fatalf("container %v, want %v", got, want)
		}
	}
}

// wantPodKept checks that the pod named name is listed not ready after a failed rollback.
func wantPodKept(name string) func(t *testing.T, e *rpcEnv) {
	return func(t *testing.T, e *rpcEnv) {
		rec, ok := e.podNamed(name)
		if !ok {
			t.Fatalf("pod %s vanished after its rollback failed", name)
		}
		if got := e.podState(t, rec.ID); got != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Fatalf("half-made pod %v, want not ready", got)
		}
	}
}

// removeKeptPodThenRun is the kubelet's way out of a half-made pod: remove it, run it again.
func removeKeptPodThenRun(name string) func(e *rpcEnv) error {
	return func(e *rpcEnv) error {
		rec, _ := e.podNamed(name)
		if _, err := e.s.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: rec.ID}); err != nil {
			return err
		}
		return runPodCall(name)(e)
	}
}

func rpcFailures() map[string]rpcFailure {
	return map[string]rpcFailure{
		"RunPodSandbox: no config": {call: func(e *rpcEnv) error {
			_, err := e.s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{})
			return err
		}, code: codes.InvalidArgument},
		"RunPodSandbox: unknown handler": {call: func(e *rpcEnv) error {
			_, err := e.s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: testPodConfig("new"), RuntimeHandler: "kata"})
			return err
		}, code: codes.NotFound},
		"RunPodSandbox: sandbox create": {fails: []string{opPodCreate}, call: runPodCall("new"), code: codes.Unavailable},
		"RunPodSandbox: sandbox panics": {fails: []string{opPodCreate}, err: fakePanic("bug"), call: runPodCall("new"),
			code: codes.Internal, after: wantPodKept("new"), retry: removeKeptPodThenRun("new")},
		// The sandbox manager's rollback failed; cri/'s retry of it succeeds: nothing is left.
		"RunPodSandbox: sandbox rollback, retried": {fails: []string{opPodCreateHalf}, call: runPodCall("new"), code: codes.Unavailable},
		"RunPodSandbox: sandbox rollback fails": {fails: []string{opPodCreateHalf, opPodRemove}, call: runPodCall("new"),
			code: codes.Unavailable, after: wantPodKept("new"), retry: removeKeptPodThenRun("new")},

		"StopPodSandbox: no id": {call: func(e *rpcEnv) error {
			_, err := e.s.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{})
			return err
		}, code: codes.InvalidArgument},
		"StopPodSandbox: unknown pod": {call: func(e *rpcEnv) error {
			_, err := e.s.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: "nope"})
			return err
		}, code: codes.OK},
		"StopPodSandbox: network teardown": {fails: []string{opPodStop}, call: func(e *rpcEnv) error {
			_, err := e.s.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod})
			return err
		}, code: codes.Unavailable, after: wantCtr(running, runtimeapi.ContainerState_CONTAINER_EXITED)},

		"RemovePodSandbox: no id": {call: func(e *rpcEnv) error {
			_, err := e.s.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{})
			return err
		}, code: codes.InvalidArgument},
		"RemovePodSandbox: pod remove": {fails: []string{opPodRemove}, call: removePodCall, code: codes.Unavailable,
			after: func(t *testing.T, e *rpcEnv) {
				if list := e.s.containers.List(); len(list) != 0 {
					t.Fatalf("containers left: %v", list)
				}
				if _, ok := e.s.pods.Get(e.pod); !ok {
					t.Fatal("the pod vanished while its removal failed")
				}
			}},
		"RemovePodSandbox: container remove": {fails: []string{opMonitorRemove}, err: errBusy, call: removePodCall, code: codes.FailedPrecondition,
			after: func(t *testing.T, e *rpcEnv) {
				if _, ok := e.s.pods.Get(e.pod); !ok || len(e.s.containers.List()) == 0 {
					t.Fatal("the pod or its containers vanished while their removal failed")
				}
			}},

		"CreateContainer: no config": {call: func(e *rpcEnv) error {
			_, err := e.s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod})
			return err
		}, code: codes.InvalidArgument},
		"CreateContainer: unknown pod": {call: func(e *rpcEnv) error {
			_, err := e.s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: "nope", Config: newCtr()})
			return err
		}, code: codes.NotFound},
		"CreateContainer: pod not ready": {call: func(e *rpcEnv) error {
			if _, err := e.s.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
				return err
			}
			return createCall(newCtr)(e)
		}, code: codes.FailedPrecondition, after: func(t *testing.T, e *rpcEnv) {
			if n := len(e.s.containers.List()); n != 2 {
				t.Fatalf("%d containers, want the two there were", n)
			}
		}},
		"CreateContainer: image acquire": {fails: []string{opAcquire}, err: errdefs.NotFound("image", testImage),
			call: createCall(newCtr), code: codes.NotFound},
		// The first volume's image was acquired: the undo releases it.
		"CreateContainer: image volume not pulled": {call: createCall(newCtrWithAbsentVolume), code: codes.NotFound},
		"CreateContainer: rootfs mount":            {fails: []string{opMount}, call: createCall(newCtr), code: codes.Unavailable},
		"CreateContainer: image volume mount":      {fails: []string{opMountRO}, call: createCall(newCtrWithImageVolume), code: codes.Unavailable},
		"CreateContainer: monitor create": {fails: []string{opMonitorCreate}, err: errdefs.InvalidArgument("bundle", "bad"),
			call: createCall(newCtr), code: codes.InvalidArgument},
		"CreateContainer: monitor panics": {fails: []string{opMonitorCreate}, err: fakePanic("bug"), call: createCall(newCtr), code: codes.Internal},
		"CreateContainer: monitor create, its undo fails": {fails: []string{opMonitorCreate, opMonitorRemove}, err: errBusy,
			call: createCall(newCtr), code: codes.FailedPrecondition,
			after: func(t *testing.T, e *rpcEnv) {
				var kept []containerRecord
				for _, c := range e.s.containers.List() {
					if c.Config.GetMetadata().GetName() == "new" {
						kept = append(kept, c)
					}
				}
				if len(kept) != 1 || kept[0].State != ctrExited || kept[0].ExitCode != 255 {
					t.Fatalf("half-made container %v, want it kept, exited with 255", kept)
				}
			},
			retry: func(e *rpcEnv) error {
				for _, c := range e.s.containers.List() {
					if c.Config.GetMetadata().GetName() == "new" {
						if err := removeCtrCall(func(*rpcEnv) string { return c.ID })(e); err != nil {
							return err
						}
					}
				}
				return createCall(newCtr)(e)
			}},

		"StartContainer: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.StartContainer(context.Background(), &runtimeapi.StartContainerRequest{ContainerId: "nope"})
			return err
		}, code: codes.NotFound},
		"StartContainer: running": {call: func(e *rpcEnv) error {
			_, err := e.s.StartContainer(context.Background(), &runtimeapi.StartContainerRequest{ContainerId: e.running})
			return err
		}, code: codes.FailedPrecondition},
		"StartContainer: monitor start": {fails: []string{opMonitorStart}, call: func(e *rpcEnv) error {
			_, err := e.s.StartContainer(context.Background(), &runtimeapi.StartContainerRequest{ContainerId: e.created})
			return err
		}, code: codes.Unavailable},

		"StopContainer: no id": {call: func(e *rpcEnv) error {
			_, err := e.s.StopContainer(context.Background(), &runtimeapi.StopContainerRequest{})
			return err
		}, code: codes.InvalidArgument},
		"StopContainer: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.StopContainer(context.Background(), &runtimeapi.StopContainerRequest{ContainerId: "nope"})
			return err
		}, code: codes.OK},

		"RemoveContainer: unknown": {call: removeCtrCall(func(*rpcEnv) string { return "nope" }), code: codes.OK},
		"RemoveContainer: monitor remove": {fails: []string{opMonitorRemove}, err: errBusy, call: removeCtrCall(running), code: codes.FailedPrecondition,
			after: wantCtr(running, runtimeapi.ContainerState_CONTAINER_EXITED)},
		"RemoveContainer: destroy": {fails: []string{opDestroy}, call: removeCtrCall(running), code: codes.Unavailable,
			after: wantCtr(running, runtimeapi.ContainerState_CONTAINER_EXITED)},
		"RemoveContainer: unmount": {fails: []string{opUnmount}, call: removeCtrCall(running), code: codes.Unavailable,
			after: wantCtr(running, runtimeapi.ContainerState_CONTAINER_EXITED)},

		"UpdateContainerResources: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.UpdateContainerResources(context.Background(), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: "nope",
				Linux: &runtimeapi.LinuxContainerResources{}})
			return err
		}, code: codes.NotFound},
		"UpdateContainerResources: update": {fails: []string{opUpdate}, call: func(e *rpcEnv) error {
			_, err := e.s.UpdateContainerResources(context.Background(), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: e.running,
				Linux: &runtimeapi.LinuxContainerResources{CpuShares: 256}})
			return err
		}, code: codes.Unavailable},
		"ExecSync: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: "nope", Cmd: []string{"true"}})
			return err
		}, code: codes.NotFound},
		"ExecSync: exec": {fails: []string{opExec}, call: func(e *rpcEnv) error {
			_, err := e.s.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: e.running, Cmd: []string{"true"}})
			return err
		}, code: codes.Unavailable},
		"Exec: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.Exec(context.Background(), &runtimeapi.ExecRequest{ContainerId: "nope", Cmd: []string{"sh"}, Stdout: true})
			return err
		}, code: codes.NotFound},
		"Attach: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.Attach(context.Background(), &runtimeapi.AttachRequest{ContainerId: "nope", Stdout: true})
			return err
		}, code: codes.NotFound},
		"PortForward: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.PortForward(context.Background(), &runtimeapi.PortForwardRequest{PodSandboxId: "nope"})
			return err
		}, code: codes.NotFound},
		"ReopenContainerLog: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.ReopenContainerLog(context.Background(), &runtimeapi.ReopenContainerLogRequest{ContainerId: "nope"})
			return err
		}, code: codes.NotFound},
		"ReopenContainerLog: created": {call: func(e *rpcEnv) error {
			_, err := e.s.ReopenContainerLog(context.Background(), &runtimeapi.ReopenContainerLogRequest{ContainerId: e.created})
			return err
		}, code: codes.FailedPrecondition},
		"ReopenContainerLog: monitor": {fails: []string{opReopenLog}, call: func(e *rpcEnv) error {
			_, err := e.s.ReopenContainerLog(context.Background(), &runtimeapi.ReopenContainerLogRequest{ContainerId: e.running})
			return err
		}, code: codes.Unavailable},
		"ExecSync: created": {call: func(e *rpcEnv) error {
			_, err := e.s.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: e.created, Cmd: []string{"true"}})
			return err
		}, code: codes.FailedPrecondition},
		"UpdateRuntimeConfig: bad pod CIDR": {call: func(e *rpcEnv) error {
			_, err := e.s.UpdateRuntimeConfig(context.Background(), &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
				NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.88.0.0/33"}}})
			return err
		}, code: codes.InvalidArgument},
		"ContainerStatus: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: "nope"})
			return err
		}, code: codes.NotFound},
		"ContainerStats: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.ContainerStats(context.Background(), &runtimeapi.ContainerStatsRequest{ContainerId: "nope"})
			return err
		}, code: codes.NotFound},
		"PodSandboxStatus: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "nope"})
			return err
		}, code: codes.NotFound},
		"PodSandboxStats: unknown": {call: func(e *rpcEnv) error {
			_, err := e.s.PodSandboxStats(context.Background(), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "nope"})
			return err
		}, code: codes.NotFound},
	}
}

// Every RPC's failing dependency calls and bad requests: the right gRPC code, nothing left half-made (or, where an
// undo failed, the object kept visible), and a retry that works once the dependency does.
func TestFakeRPCFailures(t *testing.T) {
	for name, tc := range rpcFailures() {
		t.Run(name, func(t *testing.T) {
			e := newRPCEnv(t)
			before := e.host()
			err := tc.err
			if err == nil {
				err = errDown
			}
			for _, op := range tc.fails {
				e.h.fail(op, err)
			}
			if got := grpcCode(tc.call(e)); got != tc.code {
				t.Fatalf("code %v, want %v", got, tc.code)
			}
			if tc.after != nil {
				tc.after(t, e)
			} else if after := e.host(); after != before {
				t.Fatalf("the failed call changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if len(tc.fails) == 0 {
				return
			}
			for _, op := range tc.fails {
				e.h.fail(op, nil)
			}
			retry := tc.retry
			if retry == nil {
				retry = tc.call
			}
			if err := retry(e); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
}

// A prefix of an id names the object, as crictl lets operators type.
func TestFakeIDPrefix(t *testing.T) {
	e := newRPCEnv(t)
	ctx := context.Background()
	if r, err := e.s.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: e.running[:12]}); err != nil || r.GetStatus().GetId() != e.running {
		t.Fatalf("ContainerStatus by prefix: %v, %v", r.GetStatus().GetId(), err)
	}
	if r, err := e.s.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.pod[:12]}); err != nil || r.GetStatus().GetId() != e.pod {
		t.Fatalf("PodSandboxStatus by prefix: %v, %v", r.GetStatus().GetId(), err)
	}
}

// The image service over the fake store: each RPC's happy path, and its failing store call or bad request.
func TestFakeImageService(t *testing.T) {
	ctx := context.Background()
	spec := &runtimeapi.ImageSpec{Image: testImage}
	pull := func(s *ImageServer) error {
		_, err := s.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec})
		return err
	}
	status := func(s *ImageServer) error {
		_, err := s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec, Verbose: true})
		return err
	}
	remove := func(s *ImageServer) error {
		_, err := s.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec})
		return err
	}
	fsInfo := func(s *ImageServer) error {
		_, err := s.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
		return err
	}
	for name, tc := range map[string]struct {
		fail string
		call func(s *ImageServer) error
		code codes.Code
	}{
		"PullImage":             {call: pull, code: codes.OK},
		"PullImage: no image":   {call: func(s *ImageServer) error { _, err := s.PullImage(ctx, &runtimeapi.PullImageRequest{}); return err }, code: codes.InvalidArgument},
		"PullImage: pull":       {fail: opPull, call: pull, code: codes.Unavailable},
		"ImageStatus":           {call: status, code: codes.OK},
		"ImageStatus: store":    {fail: opImageStatus, call: status, code: codes.Unavailable},
		"ImageStatus: no image": {call: func(s *ImageServer) error { _, err := s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{}); return err }, code: codes.InvalidArgument},
		"RemoveImage":           {call: remove, code: codes.OK},
		"RemoveImage: store":    {fail: opImageRemove, call: remove, code: codes.Unavailable},
		"ImageFsInfo":           {call: fsInfo, code: codes.OK},
		"ImageFsInfo: store":    {fail: opFsInfo, call: fsInfo, code: codes.Unavailable},
		"ListImages": {call: func(s *ImageServer) error {
			list, err := s.ListImages(ctx, &runtimeapi.ListImagesRequest{})
			if err == nil && len(list.GetImages()) != 1 {
				err = fmt.Errorf("listed %v, want the pulled image", list.GetImages())
			}
			return err
		}, code: codes.OK},
	} {
		t.Run(name, func(t *testing.T) {
			s, h := newTestImageServer(t)
			if tc.fail != opPull {
				if err := pull(s); err != nil {
					t.Fatal(err)
				}
			}
			if tc.fail != "" {
				h.fail(tc.fail, errDown)
			}
			if got := grpcCode(tc.call(s)); got != tc.code {
				t.Fatalf("code %v, want %v", got, tc.code)
			}
			if tc.fail == opPull && len(h.images) != 0 {
				t.Fatalf("a failed pull left images: %v", h.images)
			}
		})
	}
}

// Every RPC berth implements has its failure cases in rpcFailures or TestFakeImageService, or is listed here with
// why it has none.
func TestFakeEveryRPCHasFailures(t *testing.T) {
	none := map[string]string{
		"Version": "answers from constants", "ListPodSandbox": "served from memory", "ListContainers": "served from memory",
		"ListContainerStats": "skips what it cannot measure", "ListPodSandboxStats": "skips what it cannot measure",
		"Status": "reports failures as conditions", "RuntimeConfig": "answers from the config",
		"ListMetricDescriptors": "answers from constants", "ListPodSandboxMetrics": "skips what it cannot measure",
		"ListImages": "served from memory",
		// Not implemented: the embedded Unimplemented server answers.
		"CheckpointContainer": "unimplemented", "CheckpointPod": "unimplemented", "RestorePod": "unimplemented",
		"UpdatePodSandboxResources": "unimplemented",
	}
	image := []string{"PullImage", "ImageStatus", "RemoveImage", "ImageFsInfo"} // TestFakeImageService
	cases := rpcFailures()
	for _, rpc := range append(slices.Clone(runtimeRPCs), imageRPCs...) {
		if _, ok := none[rpc]; ok || slices.Contains(image, rpc) {
			continue
		}
		if !slices.ContainsFunc(slices.Collect(maps.Keys(cases)), func(k string) bool { return strings.HasPrefix(k, rpc+":") }) {
			t.Errorf("RPC %s has no failure case", rpc)
		}
	}
}
