package cri

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeFuzzer is one runtime service over fakes for the whole fuzzing process, with a ready pod, a running and a
// created container that requests reach through the placeholders. After each input, reset removes what the input
// made and rebuilds what it changed of those three, so the state stays bounded and the next input finds them.
type runtimeFuzzer struct {
	rpc                   *rpcHarness
	s                     *RuntimeServer
	h                     *fakeHost
	ctx                   context.Context // for the harness's own calls: their logs go nowhere
	pod, running, created string
}

func newRuntimeFuzzer(t testing.TB) *runtimeFuzzer {
	s, h := newTestRuntimeServer(t)
	fz := &runtimeFuzzer{rpc: newRPCHarness(t, s, runtimeapi.RuntimeService_ServiceDesc, runtimeRPCs), s: s, h: h,
		ctx: context.WithValue(context.Background(), loggerKey{}, slog.New(slog.DiscardHandler))}
	fz.build(t)
	return fz
}

// build makes the pod and its two containers.
func (fz *runtimeFuzzer) build(t testing.TB) {
	podCfg := testPodConfig("fuzz-base")
	fz.pod = runFakePod(t, fz.s, fz.h, podCfg)
	fz.running = createFakeContainer(t, fz.s, fz.pod, podCfg, testContainerConfig("running"))
	if _, err := fz.s.StartContainer(fz.ctx, &runtimeapi.StartContainerRequest{ContainerId: fz.running}); err != nil {
		t.Fatalf("start: %v", err)
	}
	fz.created = createFakeContainer(t, fz.s, fz.pod, podCfg, testContainerConfig("created"))
}

// substitute puts the ids of the pod and containers in place of their placeholders.
func (fz *runtimeFuzzer) substitute(req []byte) []byte {
	for _, r := range [][2]string{{podPlaceholder, fz.pod}, {runningPlaceholder, fz.running}, {createdPlaceholder, fz.created}} {
		if bytes.Contains(req, []byte(r[0])) {
			req = bytes.ReplaceAll(req, []byte(r[0]), []byte(r[1]))
		}
	}
	return req
}

func (fz *runtimeFuzzer) reset(t *testing.T) {
	for _, c := range fz.s.containers.List() {
		if c.ID != fz.running && c.ID != fz.created {
			if _, err := fz.s.RemoveContainer(fz.ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.ID}); err != nil {
				t.Fatalf("reset: remove container: %v", err)
			}
		}
	}
	for _, p := range fz.s.pods.List() {
		if p.ID != fz.pod {
			fz.removePod(t, p.ID)
		}
	}
	pod, okPod := fz.s.pods.Get(fz.pod)
	running, okRunning := fz.s.containers.Get(fz.running)
	created, okCreated := fz.s.containers.Get(fz.created)
	if !okPod || pod.State != podReady || !okRunning || running.State != ctrRunning || !okCreated || created.State != ctrCreated {
		fz.removePod(t, fz.pod)
		fz.build(t)
	}
	fz.checkMounts(t)
}

// checkMounts fails on a mount that no container record accounts for: an undo that lost one (a failed unmount
// whose record was deleted anyway) leaves what nothing would ever clean up.
func (fz *runtimeFuzzer) checkMounts(t *testing.T) {
	var bundles []string
	for _, c := range fz.s.containers.List() {
		bundles = append(bundles, c.Bundle+string(filepath.Separator))
	}
	fz.h.mu.Lock()
	defer fz.h.mu.Unlock()
	for m := range fz.h.mounts {
		if !slices.ContainsFunc(bundles, func(b string) bool { return strings.HasPrefix(m, b) }) {
			t.Fatalf("mount %s left with no container record", m)
		}
	}
}

func (fz *runtimeFuzzer) removePod(t *testing.T, id string) {
	if _, err := fz.s.RemovePodSandbox(fz.ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("reset: remove pod: %v", err)
	}
}

// runtimeSeeds is a valid request for every RPC, on the harness's pod and containers.
func runtimeSeeds() []rpcSeed {
	pod, running, created := podPlaceholder, runningPlaceholder, createdPlaceholder
	podCfg := testPodConfig("fuzz")
	podCfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"}}
	podCfg.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}}
	podCfg.Labels = map[string]string{"app": "fuzz"}
	podCfg.Linux = &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/burstable/podfuzz",
		Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}}
	ctrCfg := testContainerConfig("fuzz")
	ctrCfg.Args = []string{"-c", "echo hi"}
	ctrCfg.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("b")}}
	ctrCfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/tmp", Readonly: true},
		{ContainerPath: "/img", Readonly: true, Image: &runtimeapi.ImageSpec{Image: testImage}}}
	ctrCfg.Labels = map[string]string{"app": "fuzz"}
	ctrCfg.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}}
	ctrCfg.Linux = &runtimeapi.LinuxContainerConfig{
		Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20, CpuQuota: 50000, CpuPeriod: 100000},
		SecurityContext: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 1000},
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: running},
			Capabilities:     &runtimeapi.Capability{AddCapabilities: []string{"CAP_NET_BIND_SERVICE"}, DropCapabilities: []string{"ALL"}},
			Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/profiles/allow.json"}}}
	res := &runtimeapi.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 32 << 20}
	return []rpcSeed{
		{"Version", &runtimeapi.VersionRequest{Version: "v1"}},
		{"RunPodSandbox", &runtimeapi.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: "runc"}},
		{"StopPodSandbox", &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}},
		{"RemovePodSandbox", &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}},
		{"PodSandboxStatus", &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod, Verbose: true}},
		{"ListPodSandbox", &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: pod,
			State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}, LabelSelector: map[string]string{"app": "fuzz"}}}},
		{"CreateContainer", &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg, SandboxConfig: podCfg}},
		{"StartContainer", &runtimeapi.StartContainerRequest{ContainerId: created}},
		{"StopContainer", &runtimeapi.StopContainerRequest{ContainerId: running, Timeout: 1}},
		{"RemoveContainer", &runtimeapi.RemoveContainerRequest{ContainerId: running}},
		{"ListContainers", &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: running, PodSandboxId: pod,
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}}},
		{"ContainerStatus", &runtimeapi.ContainerStatusRequest{ContainerId: running, Verbose: true}},
		{"UpdateContainerResources", &runtimeapi.UpdateContainerResourcesRequest{ContainerId: running, Linux: res}},
		{"ReopenContainerLog", &runtimeapi.ReopenContainerLogRequest{ContainerId: running}},
		{"ExecSync", &runtimeapi.ExecSyncRequest{ContainerId: running, Cmd: []string{"true"}, Timeout: 1}},
		{"Exec", &runtimeapi.ExecRequest{ContainerId: running, Cmd: []string{"sh"}, Tty: true, Stdin: true, Stdout: true}},
		{"Attach", &runtimeapi.AttachRequest{ContainerId: running, Stdin: true, Stdout: true, Stderr: true}},
		{"PortForward", &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{80}}},
		{"ContainerStats", &runtimeapi.ContainerStatsRequest{ContainerId: running}},
		{"ListContainerStats", &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{Id: running, PodSandboxId: pod}}},
		{"PodSandboxStats", &runtimeapi.PodSandboxStatsRequest{PodSandboxId: pod}},
		{"ListPodSandboxStats", &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{Id: pod}}},
		{"UpdateRuntimeConfig", &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
			NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.88.0.0/16"}}}},
		{"Status", &runtimeapi.StatusRequest{Verbose: true}},
		{"CheckpointContainer", &runtimeapi.CheckpointContainerRequest{ContainerId: running, Location: "/tmp/x.tar"}},
		{"CheckpointPod", &runtimeapi.CheckpointPodRequest{}},
		{"RestorePod", &runtimeapi.RestorePodRequest{}},
		{"ListMetricDescriptors", &runtimeapi.ListMetricDescriptorsRequest{}},
		{"ListPodSandboxMetrics", &runtimeapi.ListPodSandboxMetricsRequest{}},
		{"RuntimeConfig", &runtimeapi.RuntimeConfigRequest{}},
		{"UpdatePodSandboxResources", &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: pod, Resources: res, Overhead: res}},
	}
}

// Every unary RPC of the services is driven by the fuzzers, or skipped here with the reason.
func TestFuzzersCoverEveryRPC(t *testing.T) {
	for _, tc := range []struct {
		desc []string
		rpcs []string
	}{
		{methodNames(runtimeapi.RuntimeService_ServiceDesc.Methods), runtimeRPCs},
		{methodNames(runtimeapi.ImageService_ServiceDesc.Methods), imageRPCs},
	} {
		for _, name := range tc.desc {
			if !slices.Contains(tc.rpcs, name) {
				t.Errorf("RPC %s is not fuzzed: append it to the list", name)
			}
		}
	}
	seeded := map[string]bool{}
	for _, s := range append(runtimeSeeds(), imageSeeds()...) {
		seeded[s.rpc] = true
	}
	for _, name := range append(slices.Clone(runtimeRPCs), imageRPCs...) {
		if !seeded[name] {
			t.Errorf("RPC %s has no seed", name)
		}
	}
}

func methodNames(ms []grpc.MethodDesc) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MethodName)
	}
	return out
}
