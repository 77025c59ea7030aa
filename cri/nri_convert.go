package cri

import (
	"encoding/json"
	"os"
	"path/filepath"

	nriapi "github.com/containerd/nri/pkg/adaptation"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// nriPod is what plugins see of a pod: its record, and its runtime's namespaces and cgroup when it has one.
func nriPod(rec podRecord, pod PodRuntime) *nriapi.PodSandbox {
	cfg := rec.Config
	md := cfg.GetMetadata()
	p := &nriapi.PodSandbox{
		Id: rec.ID, Name: md.GetName(), Uid: md.GetUid(), Namespace: md.GetNamespace(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), RuntimeHandler: rec.RuntimeHandler, Ips: rec.IPs,
		Linux: &nriapi.LinuxPodSandbox{CgroupParent: cfg.GetLinux().GetCgroupParent()},
	}
	if res := cfg.GetLinux().GetResources(); res != nil {
		p.Linux.PodResources = nriCRIResources(res)
	}
	if res := cfg.GetLinux().GetOverhead(); res != nil {
		p.Linux.PodOverhead = nriCRIResources(res)
	}
	if pod != nil {
		if n := pod.Network(); len(p.Ips) == 0 && n != nil { // at RunPodSandbox, before the record has them
			for _, ip := range n.IPs {
				p.Ips = append(p.Ips, ip.String())
			}
		}
		p.Linux.CgroupsPath = pod.CgroupParent()
		for _, ns := range []struct{ typ, path string }{
			{"network", pod.NetNSPath()}, {"ipc", pod.IPCNSPath()}, {"uts", pod.UTSNSPath()}, {"pid", pod.PIDNSPath()},
			{"user", pod.UserNSPath()},
		} {
			if ns.path != "" {
				p.Linux.Namespaces = append(p.Linux.Namespaces, &nriapi.LinuxNamespace{Type: ns.typ, Path: ns.path})
			}
		}
	}
	return p
}

// nriContainer is what plugins see of a container: its record and, when known, its OCI spec.
func nriContainer(rec containerRecord, spec *specs.Spec) *nriapi.Container {
	cfg := rec.Config
	c := &nriapi.Container{
		Id: rec.ID, PodSandboxId: rec.PodID, Name: cfg.GetMetadata().GetName(), State: nriState(rec.State),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		CreatedAt: rec.CreatedAt, StartedAt: rec.StartedAt, FinishedAt: rec.FinishedAt, ExitCode: rec.ExitCode,
		StatusReason: rec.Reason, StatusMessage: rec.Message,
	}
	if spec == nil {
		return c
	}
	if spec.Annotations != nil {
		c.Annotations = spec.Annotations
	}
	c.Mounts = nriapi.FromOCIMounts(spec.Mounts)
	c.Hooks = nriapi.FromOCIHooks(spec.Hooks)
	if p := spec.Process; p != nil {
		c.Args, c.Env = p.Args, p.Env
		for _, r := range p.Rlimits {
			c.Rlimits = append(c.Rlimits, &nriapi.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
		c.User = &nriapi.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: p.User.AdditionalGids}
	}
	if l := spec.Linux; l != nil {
		c.Linux = &nriapi.LinuxContainer{
			Namespaces: nriapi.FromOCILinuxNamespaces(l.Namespaces), Devices: nriapi.FromOCILinuxDevices(l.Devices),
			Resources: nriapi.FromOCILinuxResources(l.Resources, nil), CgroupsPath: l.CgroupsPath, Sysctl: l.Sysctl,
		}
		if p := spec.Process; p != nil && p.OOMScoreAdj != nil {
			c.Linux.OomScoreAdj = nriapi.Int(p.OOMScoreAdj)
		}
	}
	return c
}

func nriState(s containerState) nriapi.ContainerState {
	switch s {
	case ctrCreated:
		return nriapi.ContainerState_CONTAINER_CREATED
	case ctrRunning:
		return nriapi.ContainerState_CONTAINER_RUNNING
	case ctrExited:
		return nriapi.ContainerState_CONTAINER_STOPPED
	}
	return nriapi.ContainerState_CONTAINER_UNKNOWN
}

// loadSpec reads the spec berth wrote for a container; nil when there is none (yet, or any more).
func (s *RuntimeServer) loadSpec(rec containerRecord) *specs.Spec {
	b, err := os.ReadFile(filepath.Join(rec.Bundle, "config.json"))
	if err != nil {
		return nil
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil
	}
	return &spec
}

// nriCRIResources maps CRI resources to NRI's without the host's clamping: what the kubelet asked for.
func nriCRIResources(r *runtimeapi.LinuxContainerResources) *nriapi.LinuxResources {
	out := &nriapi.LinuxResources{
		Cpu:    &nriapi.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()},
		Memory: &nriapi.LinuxMemory{},
	}
	if v := r.GetCpuShares(); v > 0 {
		out.Cpu.Shares = nriapi.UInt64(uint64(v))
	}
	if v := r.GetCpuQuota(); v != 0 {
		out.Cpu.Quota = nriapi.Int64(v)
	}
	if v := r.GetCpuPeriod(); v > 0 {
		out.Cpu.Period = nriapi.UInt64(uint64(v))
	}
	if v := r.GetMemoryLimitInBytes(); v != 0 {
		out.Memory.Limit = nriapi.Int64(v)
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		out.Memory.Swap = nriapi.Int64(v)
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, &nriapi.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	out.Unified = r.GetUnified()
	return out
}

// criResources maps a plugin's resource update to the CRI update berth's update path applies: the fields that
// path knows (the rest of NRI's, such as block I/O or RDT classes, has no CRI counterpart).
func criResources(r *nriapi.LinuxResources) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{
		CpusetCpus: r.GetCpu().GetCpus(), CpusetMems: r.GetCpu().GetMems(), Unified: r.GetUnified(),
	}
	if v := r.GetCpu().GetShares(); v != nil {
		out.CpuShares = int64(v.GetValue())
	}
	if v := r.GetCpu().GetQuota(); v != nil {
		out.CpuQuota = v.GetValue()
	}
	if v := r.GetCpu().GetPeriod(); v != nil {
		out.CpuPeriod = int64(v.GetValue())
	}
	if v := r.GetMemory().GetLimit(); v != nil {
		out.MemoryLimitInBytes = v.GetValue()
	}
	if v := r.GetMemory().GetSwap(); v != nil {
		out.MemorySwapLimitInBytes = v.GetValue()
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return out
}
