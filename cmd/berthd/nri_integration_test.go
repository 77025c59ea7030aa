//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testPlugin is an NRI plugin on nri's stub: it records the events it gets, adjusts containers at CreateContainer
// (an env variable and an annotation) and, with hang set, never answers CreateContainer.
type testPlugin struct {
	hang bool

	mu     sync.Mutex
	events []string // "Event pod-or-container-id"
	synced chan []string
}

func (p *testPlugin) record(event, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, event+" "+id)
}

func (p *testPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	var ids []string
	for _, x := range pods {
		ids = append(ids, x.GetId())
	}
	for _, c := range ctrs {
		ids = append(ids, c.GetId())
	}
	p.synced <- ids
	return nil, nil
}

func (p *testPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod.GetId())
	return nil
}
func (p *testPlugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, _, _ *api.LinuxResources) error {
	p.record("UpdatePodSandbox", pod.GetId())
	return nil
}
func (p *testPlugin) PostUpdatePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("PostUpdatePodSandbox", pod.GetId())
	return nil
}
func (p *testPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod.GetId())
	return nil
}
func (p *testPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox", pod.GetId())
	return nil
}

func (p *testPlugin) CreateContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", c.GetId())
	if p.hang {
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		return nil, nil, ctx.Err()
	}
	a := &api.ContainerAdjustment{}
	a.AddEnv("NRI_TEST", "adjusted")
	a.AddAnnotation("test.berth.io/nri", "adjusted")
	return a, nil, nil
}
func (p *testPlugin) PostCreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostCreateContainer", c.GetId())
	return nil
}
func (p *testPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer", c.GetId())
	return nil
}
func (p *testPlugin) PostStartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostStartContainer", c.GetId())
	return nil
}
func (p *testPlugin) UpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.record("UpdateContainer", c.GetId())
	return nil, nil
}
func (p *testPlugin) PostUpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostUpdateContainer", c.GetId())
	return nil
}
func (p *testPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", c.GetId())
	return nil, nil
}
func (p *testPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer", c.GetId())
	return nil
}

// eventsOf returns the recorded events of the given ids, waiting up to 10 s for there to be want of them.
func (p *testPlugin) eventsOf(want int, ids ...string) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out []string
		p.mu.Lock()
		for _, e := range p.events {
			if _, id, _ := strings.Cut(e, " "); slices.Contains(ids, id) {
				out = append(out, e)
			}
		}
		p.mu.Unlock()
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connect starts the plugin on berthd's NRI socket and waits for its synchronization, whose ids it returns.
func (p *testPlugin) connect(t *testing.T, socket, name, idx string) (stub.Stub, []string) {
	t.Helper()
	p.synced = make(chan []string, 1)
	s, err := stub.New(p, stub.WithSocketPath(socket), stub.WithPluginName(name), stub.WithPluginIdx(idx))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start NRI plugin %s: %v", name, err)
	}
	t.Cleanup(s.Stop)
	select {
	case ids := <-p.synced:
		return s, ids
	case <-time.After(10 * time.Second):
		t.Fatalf("NRI plugin %s was not synchronized", name)
	}
	return nil, nil
}

// newNRIDaemon is a pod daemon with NRI on a socket in its dir.
func newNRIDaemon(t *testing.T, requestTimeout string) (*daemon, string) {
	t.Helper()
	d := newPodDaemon(t)
	socket := filepath.Join(d.dir, "nri.sock")
	conf := fmt.Sprintf("[nri]\nenable = true\nsocket_path = %q\nplugin_path = %q\nplugin_config_path = %q\nrequest_timeout = %q\n",
		socket, filepath.Join(d.dir, "nri-plugins"), filepath.Join(d.dir, "nri-conf.d"), requestTimeout)
	if err := os.MkdirAll(filepath.Join(d.dir, "berth.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "berth.d", "20-nri.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return d, socket
}

// bundleSpec reads the OCI spec berthd wrote for a container.
func bundleSpec(t *testing.T, d *daemon, id string) *specs.Spec {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(d.dir, "state", "pods", "*", "containers", id, "config.json"))
	if len(files) != 1 {
		t.Fatalf("spec of container %s: found %v", id, files)
	}
	var spec specs.Spec
	if err := json.Unmarshal(must(os.ReadFile(files[0])), &spec); err != nil {
		t.Fatal(err)
	}
	return &spec
}

// TestNRIPlugin: a plugin's CreateContainer adjustment reaches the running container, the plugin gets every
// lifecycle event of a pod and its container in order, and a plugin connecting later is synchronized with them.
func TestNRIPlugin(t *testing.T) {
	d, socket := newNRIDaemon(t, "2s")
	rt, _ := d.startWithTestImage(t)
	plugin := &testPlugin{}
	recorder, _ := plugin.connect(t, socket, "recorder", "10")

	pc := podConfig(d.dir, "nri")
	pod := runTestPod(t, rt, pc)
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod,
		Config: containerConfig("nri", "sleep", "3600"), SandboxConfig: pc})
	if err != nil {
		t.Fatal(err)
	}
	id := c.ContainerId
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	res, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"env"}, Timeout: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Stdout), "NRI_TEST=adjusted") {
		t.Errorf("the plugin's env adjustment is not in the container's environment:\n%s", res.Stdout)
	}
	if got := bundleSpec(t, d, id).Annotations["test.berth.io/nri"]; got != "adjusted" {
		t.Errorf("the plugin's annotation is %q in the container's spec, want \"adjusted\"", got)
	}

	late := &testPlugin{}
	_, synced := late.connect(t, socket, "late", "20")
	if !slices.Contains(synced, pod) || !slices.Contains(synced, id) {
		t.Errorf("a plugin connecting later was synchronized with %v, want pod %s and container %s", synced, pod, id)
	}

	// An update the plugin asks for on its own goes through berth's update path.
	failed, err := recorder.UpdateContainers([]*api.ContainerUpdate{{ContainerId: id,
		Linux: &api.LinuxContainerUpdate{Resources: &api.LinuxResources{Cpu: &api.LinuxCPU{Shares: api.UInt64(256)}}}}})
	if err != nil || len(failed) != 0 {
		t.Fatalf("plugin's UpdateContainers: %v, failed %v", err, failed)
	}
	if got := containerState(t, rt, id).GetResources().GetLinux().GetCpuShares(); got != 256 {
		t.Errorf("after the plugin's update the container's cpu_shares are %d, want 256", got)
	}
	if cg := containerCgroup(t, rt, id); cg != "" {
		if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", cg, "cpu.shares")); err == nil && strings.TrimSpace(string(b)) != "256" {
			t.Errorf("cpu.shares in the container's cgroup is %s after the plugin's update, want 256", b)
		}
	}
	if _, err := rt.UpdateContainerResources(ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.UpdatePodSandboxResources(ctx(t), &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: pod,
		Resources: &runtimeapi.LinuxContainerResources{CpuShares: 1024}}); err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error {
			_, err := rt.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id})
			return err
		},
		func() error {
			_, err := rt.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id})
			return err
		},
		func() error {
			_, err := rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod})
			return err
		},
		func() error {
			_, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"RunPodSandbox " + pod, "CreateContainer " + id, "PostCreateContainer " + id, "StartContainer " + id,
		"PostStartContainer " + id, "UpdateContainer " + id, "PostUpdateContainer " + id, "UpdatePodSandbox " + pod,
		"PostUpdatePodSandbox " + pod, "StopContainer " + id, "RemoveContainer " + id, "StopPodSandbox " + pod,
		"RemovePodSandbox " + pod}
	if got := plugin.eventsOf(len(want), pod, id); !slices.Equal(got, want) {
		t.Errorf("plugin events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNRIHungPlugin: a plugin that never answers CreateContainer holds the call up for request_timeout only; the
// container is created without it, and the log names the plugin.
func TestNRIHungPlugin(t *testing.T) {
	d, socket := newNRIDaemon(t, "1s")
	rt, _ := d.startWithTestImage(t)
	_, _ = (&testPlugin{hang: true}).connect(t, socket, "hangs", "10")
	pc := podConfig(d.dir, "nri-hang")
	p, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pc})
	if err != nil {
		t.Fatal(err)
	}
	pod := p.PodSandboxId
	start := time.Now()
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod,
		Config: containerConfig("hang", "sleep", "3600"), SandboxConfig: pc})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("CreateContainer with a hung plugin: %v", err)
	}
	if took > 8*time.Second {
		t.Errorf("CreateContainer took %s with request_timeout 1s", took)
	}
	if st := containerState(t, rt, c.ContainerId); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("container is %s, want created", st.State)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	d.stop(t) // its log is read once it exited
	if log := d.log.String(); !strings.Contains(log, "10-hangs") {
		t.Errorf("berthd's log does not name the hung plugin 10-hangs:\n%s", log)
	}
}

// TestNRIOff: berthd without [nri] enable opens no NRI socket.
func TestNRIOff(t *testing.T) {
	d := newDaemon(t, "")
	socket := filepath.Join(d.dir, "nri.sock")
	if err := os.MkdirAll(filepath.Join(d.dir, "berth.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[nri]\nenable = false\nsocket_path = %q\n", socket)
	if err := os.WriteFile(filepath.Join(d.dir, "berth.d", "20-nri.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	rt, _ := d.clients(t)
	if _, err := rt.Version(ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("NRI is off but %s exists (%v)", socket, err)
	}
}
