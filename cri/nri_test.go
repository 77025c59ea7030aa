package cri

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	nriapi "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeNRI records the events berth sends, in order, and fails those named in fail.
type fakeNRI struct {
	mu     sync.Mutex
	events []string // "Event id"
	fail   map[string]bool
	adjust *nriapi.ContainerAdjustment
}

func (f *fakeNRI) accept() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = nil
}

func (f *fakeNRI) record(event, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event+" "+id)
	if f.fail[event] {
		return errors.New("refused by test plugin")
	}
	return nil
}

// eventsOf waits up to 5 s for n events about the ids, or of all with none (notifications are sent from a
// goroutine).
func (f *fakeNRI) eventsOf(n int, ids ...string) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []string
		f.mu.Lock()
		for _, e := range f.events {
			if _, id, _ := strings.Cut(e, " "); len(ids) == 0 || slices.Contains(ids, id) {
				out = append(out, e)
			}
		}
		f.mu.Unlock()
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fakeNRI) RunPodSandbox(_ context.Context, r *nriapi.RunPodSandboxRequest) error {
	if len(r.Pod.Ips) == 0 || r.Pod.Name == "" {
		return f.record("RunPodSandbox without the pod's name or IPs", r.Pod.Id)
	}
	return f.record("RunPodSandbox", r.Pod.Id)
}
func (f *fakeNRI) UpdatePodSandbox(_ context.Context, r *nriapi.UpdatePodSandboxRequest) (*nriapi.UpdatePodSandboxResponse, error) {
	return &nriapi.UpdatePodSandboxResponse{}, f.record("UpdatePodSandbox", r.Pod.Id)
}
func (f *fakeNRI) PostUpdatePodSandbox(_ context.Context, r *nriapi.PostUpdatePodSandboxRequest) error {
	return f.record("PostUpdatePodSandbox", r.Pod.Id)
}
func (f *fakeNRI) StopPodSandbox(_ context.Context, r *nriapi.StopPodSandboxRequest) error {
	return f.record("StopPodSandbox", r.Pod.Id)
}
func (f *fakeNRI) RemovePodSandbox(_ context.Context, r *nriapi.RemovePodSandboxRequest) error {
	return f.record("RemovePodSandbox", r.Pod.Id)
}
func (f *fakeNRI) CreateContainer(_ context.Context, r *nriapi.CreateContainerRequest) (*nriapi.CreateContainerResponse, error) {
	return &nriapi.CreateContainerResponse{Adjust: f.adjust}, f.record("CreateContainer", r.Container.Id)
}
func (f *fakeNRI) PostCreateContainer(_ context.Context, r *nriapi.PostCreateContainerRequest) error {
	return f.record("PostCreateContainer", r.Container.Id)
}
func (f *fakeNRI) StartContainer(_ context.Context, r *nriapi.StartContainerRequest) error {
	return f.record("StartContainer", r.Container.Id)
}
func (f *fakeNRI) PostStartContainer(_ context.Context, r *nriapi.PostStartContainerRequest) error {
	return f.record("PostStartContainer", r.Container.Id)
}
func (f *fakeNRI) UpdateContainer(_ context.Context, r *nriapi.UpdateContainerRequest) (*nriapi.UpdateContainerResponse, error) {
	return &nriapi.UpdateContainerResponse{}, f.record("UpdateContainer", r.Container.Id)
}
func (f *fakeNRI) PostUpdateContainer(_ context.Context, r *nriapi.PostUpdateContainerRequest) error {
	return f.record("PostUpdateContainer", r.Container.Id)
}
func (f *fakeNRI) StopContainer(_ context.Context, r *nriapi.StopContainerRequest) (*nriapi.StopContainerResponse, error) {
	return &nriapi.StopContainerResponse{}, f.record("StopContainer", r.Container.Id)
}
func (f *fakeNRI) RemoveContainer(_ context.Context, r *nriapi.RemoveContainerRequest) error {
	return f.record("RemoveContainer", r.Container.Id)
}
func (f *fakeNRI) BlockPluginSync() *nriapi.PluginSyncBlock { return &nriapi.PluginSyncBlock{} }
func (f *fakeNRI) Stop()                                    {}

func newNRITestServer(t *testing.T, f *fakeNRI) (*RuntimeServer, *fakeHost) {
	t.Helper()
	s, h := newTestRuntimeServer(t)
	s.setNRI(f)
	return s, h
}

func TestNRILifecycleEvents(t *testing.T) {
	adjust := &nriapi.ContainerAdjustment{}
	adjust.AddEnv("FROM_PLUGIN", "1")
	adjust.AddAnnotation("test/nri", "yes")
	f := &fakeNRI{adjust: adjust}
	s, h := newNRITestServer(t, f)
	ctx := context.Background()
	podCfg := testPodConfig("nri")
	podID := runFakePod(t, s, h, podCfg)
	id := createFakeContainer(t, s, podID, podCfg, testContainerConfig("app"))
	rec, _ := s.containers.Get(id)
	spec := s.loadSpec(rec)
	if spec == nil || !slices.Contains(spec.Process.Env, "FROM_PLUGIN=1") || spec.Annotations["test/nri"] != "yes" {
		t.Fatalf("the plugin's adjustment is not in the written spec: %+v", spec)
	}
	calls := []func() error{
		func() error {
			_, err := s.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
			return err
		},
		func() error {
			_, err := s.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
				Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512}})
			return err
		},
		func() error {
			_, err := s.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: podID,
				Resources: &runtimeapi.LinuxContainerResources{CpuShares: 1024}})
			return err
		},
		func() error {
			_, err := s.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id})
			return err
		},
		func() error {
			_, err := s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
			return err
		},
		func() error {
			_, err := s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
			return err
		},
		// A second stop is no second event.
		func() error {
			_, err := s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
			return err
		},
		func() error {
			_, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
			return err
		},
	}
	for i, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	want := []string{"RunPodSandbox " + podID, "CreateContainer " + id, "PostCreateContainer " + id, "StartContainer " + id,
		"PostStartContainer " + id, "UpdateContainer " + id, "PostUpdateContainer " + id, "UpdatePodSandbox " + podID,
		"PostUpdatePodSandbox " + podID, "StopContainer " + id, "RemoveContainer " + id, "StopPodSandbox " + podID,
		"RemovePodSandbox " + podID}
	if got := f.eventsOf(len(want), podID, id); !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNRIRefusals: a plugin refusing an event fails the CRI call with FailedPrecondition and leaves nothing of it.
func TestNRIRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("RunPodSandbox", func(t *testing.T) {
		f := &fakeNRI{fail: map[string]bool{"RunPodSandbox": true}}
		s, h := newNRITestServer(t, f)
		if _, err := (fakeImages{h}).Pull(ctx, testImage, nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: testPodConfig("refused")})
		if status.Code(toStatus(err)) != codes.FailedPrecondition || !strings.Contains(err.Error(), "refused by test plugin") {
			t.Fatalf("RunPodSandbox = %v, want FailedPrecondition with the plugin's message", err)
		}
		if list := s.pods.List(); len(list) != 0 || len(h.pods) != 0 {
			t.Errorf("left: records %v, pods %v", list, h.pods)
		}
		// The retry is a new pod the plugin accepts.
		f.accept()
		runFakePod(t, s, h, testPodConfig("refused"))
	})
	t.Run("CreateContainer", func(t *testing.T) {
		f := &fakeNRI{fail: map[string]bool{"CreateContainer": true}}
		s, h := newNRITestServer(t, f)
		podCfg := testPodConfig("p")
		podID := runFakePod(t, s, h, podCfg)
		_, err := s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: testContainerConfig("c"), SandboxConfig: podCfg})
		if status.Code(toStatus(err)) != codes.FailedPrecondition {
			t.Fatalf("CreateContainer = %v, want FailedPrecondition", err)
		}
		assertNoContainerLeft(t, s, h)
		// Plugins that saw the creation are told it is gone, and no PostCreateContainer follows.
		events := f.eventsOf(4)
		var kinds []string
		for _, e := range events[1:] {
			kind, _, _ := strings.Cut(e, " ")
			kinds = append(kinds, kind)
		}
		if want := []string{"CreateContainer", "StopContainer", "RemoveContainer"}; !slices.Equal(kinds, want) {
			t.Errorf("events after a refused creation %v, want %v", kinds, want)
		}
		f.accept()
		createFakeContainer(t, s, podID, podCfg, testContainerConfig("c"))
	})
	t.Run("StartContainer", func(t *testing.T) {
		f := &fakeNRI{fail: map[string]bool{"StartContainer": true}}
		s, h := newNRITestServer(t, f)
		podCfg := testPodConfig("p")
		podID := runFakePod(t, s, h, podCfg)
		id := createFakeContainer(t, s, podID, podCfg, testContainerConfig("c"))
		_, err := s.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
		if status.Code(toStatus(err)) != codes.FailedPrecondition {
			t.Fatalf("StartContainer = %v, want FailedPrecondition", err)
		}
		if got := ctrState(t, s, id); got != runtimeapi.ContainerState_CONTAINER_CREATED {
			t.Errorf("after a refused start the container is %v, want created", got)
		}
	})
}

// TestNRIUpdateOfCreatingContainer: a plugin's update of a container being created is refused at once, not
// waited for: the creation holds the container's lock while it waits for the plugins.
func TestNRIUpdateOfCreatingContainer(t *testing.T) {
	s, _ := newNRITestServer(t, &fakeNRI{})
	const id = "creating"
	if err := s.containers.Create(id, containerRecord{ID: id, PodID: "p", Config: testContainerConfig("c"), State: ctrCreating}); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.ctrLocks.Lock(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	updates := []*nriapi.ContainerUpdate{
		{ContainerId: id, Linux: &nriapi.LinuxContainerUpdate{Resources: &nriapi.LinuxResources{Cpu: &nriapi.LinuxCPU{Cpus: "0"}}}},
		{ContainerId: "unknown", Linux: &nriapi.LinuxContainerUpdate{Resources: &nriapi.LinuxResources{}}},
		{ContainerId: "ignored", IgnoreFailure: true},
	}
	failed, err := s.UpdateContainersNRI(ctx, updates)
	if err != nil || ctx.Err() != nil {
		t.Fatalf("UpdateContainersNRI: %v, ctx %v", err, ctx.Err())
	}
	if len(failed) != 2 || failed[0].ContainerId != id || failed[1].ContainerId != "unknown" {
		t.Errorf("failed updates %v, want the creating and the unknown container's", failed)
	}
}

func TestSpecEditorAdjust(t *testing.T) {
	oom := 100
	base := func() *specs.Spec {
		return &specs.Spec{
			Process:     &specs.Process{Args: []string{"sleep"}, Env: []string{"PATH=/bin", "KEEP=1", "DROP=1"}, OOMScoreAdj: &oom},
			Annotations: map[string]string{"a": "1"},
			Mounts:      []specs.Mount{{Destination: "/data", Source: "/src", Type: "bind"}},
			Linux:       &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}}},
		}
	}
	cases := map[string]struct {
		adjust func(a *nriapi.ContainerAdjustment)
		check  func(s *specs.Spec) bool
	}{
		"env set and removed": {
			adjust: func(a *nriapi.ContainerAdjustment) { a.AddEnv("NEW", "2"); a.RemoveEnv("DROP"); a.AddEnv("KEEP", "3") },
			check: func(s *specs.Spec) bool {
				return slices.Equal(s.Process.Env, []string{"PATH=/bin", "KEEP=3", "NEW=2"})
			},
		},
		"annotation": {
			adjust: func(a *nriapi.ContainerAdjustment) { a.AddAnnotation("b", "2") },
			check:  func(s *specs.Spec) bool { return s.Annotations["a"] == "1" && s.Annotations["b"] == "2" },
		},
		"mount added and removed": {
			adjust: func(a *nriapi.ContainerAdjustment) {
				a.RemoveMount("/data")
				a.AddMount(&nriapi.Mount{Destination: "/new", Source: "/host", Type: "bind", Options: []string{"rbind", "ro"}})
			},
			check: func(s *specs.Spec) bool { return len(s.Mounts) == 1 && s.Mounts[0].Destination == "/new" },
		},
		"device": {
			adjust: func(a *nriapi.ContainerAdjustment) {
				a.AddDevice(&nriapi.LinuxDevice{Path: "/dev/test0", Type: "c", Major: 1, Minor: 3})
			},
			check: func(s *specs.Spec) bool { return len(s.Linux.Devices) == 1 && s.Linux.Devices[0].Path == "/dev/test0" },
		},
		"resources": {
			adjust: func(a *nriapi.ContainerAdjustment) {
				a.SetLinuxCPUShares(256)
				a.SetLinuxCPUSetCPUs("0-1")
				a.SetLinuxMemoryLimit(64 << 20)
			},
			check: func(s *specs.Spec) bool {
				r := s.Linux.Resources
				return *r.CPU.Shares == 256 && r.CPU.Cpus == "0-1" && *r.Memory.Limit == 64<<20
			},
		},
		"rlimit, oom score, hooks": {
			adjust: func(a *nriapi.ContainerAdjustment) {
				a.AddRlimit("RLIMIT_NOFILE", 1024, 512)
				a.SetLinuxOomScoreAdj(func() *int { v := 500; return &v }())
				a.AddHooks(&nriapi.Hooks{Poststart: []*nriapi.Hook{{Path: "/bin/true"}}})
			},
			check: func(s *specs.Spec) bool {
				return len(s.Process.Rlimits) == 1 && s.Process.Rlimits[0].Hard == 1024 && *s.Process.OOMScoreAdj == 500 &&
					len(s.Hooks.Poststart) == 1
			},
		},
		"namespace replaced": {
			adjust: func(a *nriapi.ContainerAdjustment) {
				a.AddOrReplaceNamespace(&nriapi.LinuxNamespace{Type: "network", Path: "/proc/2/ns/net"})
			},
			check: func(s *specs.Spec) bool {
				return len(s.Linux.Namespaces) == 1 && s.Linux.Namespaces[0].Path == "/proc/2/ns/net"
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := &nriapi.ContainerAdjustment{}
			tc.adjust(a)
			spec := base()
			if err := generate.SpecGenerator(specEditor{spec}).Adjust(a); err != nil {
				t.Fatal(err)
			}
			if !tc.check(spec) {
				t.Errorf("adjusted spec: process %+v, linux %+v, mounts %+v, annotations %v, hooks %+v",
					spec.Process, spec.Linux, spec.Mounts, spec.Annotations, spec.Hooks)
			}
		})
	}
}

func TestNRIResourcesRoundTrip(t *testing.T) {
	cases := map[string]*runtimeapi.LinuxContainerResources{
		"empty": {},
		"full": {CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 1 << 30,
			MemorySwapLimitInBytes: 2 << 30, CpusetCpus: "0-1", CpusetMems: "0",
			HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
			Unified:        map[string]string{"memory.high": "1073741824"}},
		"quota only": {CpuQuota: -1},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			out := criResources(nriCRIResources(in))
			if len(in.GetUnified()) == 0 {
				out.Unified = nil
			}
			if !proto.Equal(in, out) {
				t.Errorf("round trip %v, want %v", out, in)
			}
		})
	}
}

// A creation whose rollback fails keeps the container listed: plugins hear of its stop once, and of its removal only
// when the kubelet removes it.
func TestNRIKeptHalfMadeContainer(t *testing.T) {
	ctx := context.Background()
	f := &fakeNRI{}
	s, h := newNRITestServer(t, f)
	podCfg := testPodConfig("p")
	podID := runFakePod(t, s, h, podCfg)
	h.fail(opMonitorCreate, errBusy)
	h.fail(opMonitorRemove, errBusy)
	if _, err := s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: testContainerConfig("c"), SandboxConfig: podCfg}); err == nil {
		t.Fatal("CreateContainer succeeded, want the monitor's failure")
	}
	list := s.containers.List()
	if len(list) != 1 {
		t.Fatalf("containers %v, want the half-made one kept", list)
	}
	id := list[0].ID
	h.fail(opMonitorCreate, nil)
	h.fail(opMonitorRemove, nil)
	if _, err := s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	// The pod's events are sent in order: once its StopPodSandbox arrived, every event of the container has too.
	if _, err := s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if got := f.eventsOf(2, podID); len(got) < 2 {
		t.Fatalf("pod events %v, want RunPodSandbox and StopPodSandbox", got)
	}
	var kinds []string
	for _, e := range f.eventsOf(0, id) {
		kind, _, _ := strings.Cut(e, " ")
		kinds = append(kinds, kind)
	}
	if want := []string{"CreateContainer", "StopContainer", "RemoveContainer"}; !slices.Equal(kinds, want) {
		t.Errorf("events of the kept container %v, want %v", kinds, want)
	}
}
