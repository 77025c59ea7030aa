//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A container's resources land in its cgroup's files, on cgroup v1 and v2 alike, at CreateContainer and again after
// UpdateContainerResources. With the systemd driver the cgroup is the scope systemd made for the container in the
// pod's slice, its unit has the resources systemd owns as properties, and the pod's units are gone once the pod is
// removed.
func TestContainerResourcesInCgroup(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	pc := podConfig(d.dir, "resources")
	podID := runTestPod(t, rt, pc)
	cfg := containerConfig("resources", "sleep", "3600")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, CpusetCpus: "0"}}
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	cg := containerCgroup(t, rt, c.ContainerId)
	checkCgroupResources(t, cg, cfg.Linux.Resources)
	scope := "berth-" + c.ContainerId + ".scope"
	if systemdDriver() {
		if want := "/" + testCgroupParent + "/" + scope; cg != want {
			t.Errorf("container cgroup %s, want systemd's %s", cg, want)
		}
		checkUnitResources(t, scope, cfg.Linux.Resources)
	}

	update := &runtimeapi.LinuxContainerResources{CpuShares: 256, CpuQuota: 20000, CpuPeriod: 100000,
		MemoryLimitInBytes: 128 << 20, CpusetCpus: "0"}
	if _, err := rt.UpdateContainerResources(ctx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: c.ContainerId, Linux: update}); err != nil {
		t.Fatal(err)
	}
	checkCgroupResources(t, cg, update)
	if !systemdDriver() {
		return
	}
	checkUnitResources(t, scope, update)
	for _, r := range []func() error{
		func() error {
			_, err := rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
			return err
		},
		func() error {
			_, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
			return err
		},
	} {
		if err := r(); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{scope, "berth-monitor-" + podID + ".scope"} {
		checkUnitGone(t, u)
	}
	checkUnitStopped(t, testCgroupParent)
}

// checkUnitResources checks the properties of a container's scope that libcontainer's systemd manager sets from
// its resources (systemd would otherwise write its own values over the cgroup files).
func checkUnitResources(t *testing.T, unit string, r *runtimeapi.LinuxContainerResources) {
	t.Helper()
	want := map[string]string{
		"CPUWeight":          fmt.Sprint(cgroups.ConvertCPUSharesToCgroupV2Value(uint64(r.CpuShares))),
		"CPUQuotaPerSecUSec": (time.Duration(r.CpuQuota*1e6/r.CpuPeriod) * time.Microsecond).String(),
		"CPUQuotaPeriodUSec": (time.Duration(r.CpuPeriod) * time.Microsecond).String(),
		"MemoryMax":          fmt.Sprint(r.MemoryLimitInBytes),
		"AllowedCPUs":        r.CpusetCpus,
	}
	got := unitProperties(t, unit, slices.Sorted(maps.Keys(want))...)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("unit %s: %s=%q, want %q", unit, k, got[k], v)
		}
	}
}

// containerCgroup is the cgroup of the container's main process: on v2 its one path, on v1 the memory hierarchy's
// (berth's cgroupfs paths are the same in every hierarchy).
func containerCgroup(t *testing.T, rt runtimeapi.RuntimeServiceClient, id string) string {
	t.Helper()
	st, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("verbose info %q: pid %d, %v", st.Info["info"], info.Pid, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if cgroups.IsCgroup2UnifiedMode() && f[0] == "0" || slices.Contains(strings.Split(f[1], ","), "memory") {
			return f[2]
		}
	}
	t.Fatalf("no cgroup of pid %d in %q", info.Pid, b)
	return ""
}

func checkCgroupResources(t *testing.T, cg string, r *runtimeapi.LinuxContainerResources) {
	t.Helper()
	want := map[string]string{}
	if cgroups.IsCgroup2UnifiedMode() {
		dir := filepath.Join("/sys/fs/cgroup", cg)
		want[filepath.Join(dir, "cpu.max")] = fmt.Sprintf("%d %d", r.CpuQuota, r.CpuPeriod)
		want[filepath.Join(dir, "cpu.weight")] = fmt.Sprint(cgroups.ConvertCPUSharesToCgroupV2Value(uint64(r.CpuShares)))
		want[filepath.Join(dir, "memory.max")] = fmt.Sprint(r.MemoryLimitInBytes)
		want[filepath.Join(dir, "cpuset.cpus")] = r.CpusetCpus
		// A memory limit caps memory+swap to the same value (containerd's choice): no swap.
		if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
			want[filepath.Join(dir, "memory.swap.max")] = "0"
		}
	} else {
		want[filepath.Join("/sys/fs/cgroup/cpu", cg, "cpu.shares")] = fmt.Sprint(r.CpuShares)
		want[filepath.Join("/sys/fs/cgroup/cpu", cg, "cpu.cfs_quota_us")] = fmt.Sprint(r.CpuQuota)
		want[filepath.Join("/sys/fs/cgroup/cpu", cg, "cpu.cfs_period_us")] = fmt.Sprint(r.CpuPeriod)
		want[filepath.Join("/sys/fs/cgroup/memory", cg, "memory.limit_in_bytes")] = fmt.Sprint(r.MemoryLimitInBytes)
		want[filepath.Join("/sys/fs/cgroup/cpuset", cg, "cpuset.cpus")] = r.CpusetCpus
	}
	for file, v := range want {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := strings.TrimSpace(string(b)); got != v {
			t.Errorf("%s = %q, want %q", file, got, v)
		}
	}
}
