package specgen

import (
	"maps"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// resources maps the CRI resources onto the spec's cgroup settings (0 and "" mean not set), like containerd:
// a memory limit also limits memory+swap to the same value (no swap) unless a swap limit is given, when the host
// accounts swap.
func resources(r *LinuxContainerResources, host *Host, out *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	for _, v := range []struct {
		field string
		value int64
	}{
		{"linux.resources.cpu_period", r.CpuPeriod},
		{"linux.resources.cpu_shares", r.CpuShares},
		{"linux.resources.memory_limit_in_bytes", r.MemoryLimitInBytes},
	} {
		if v.value < 0 {
			return errdefs.InvalidArgument(v.field, "negative value %d", v.value)
		}
	}

	var cpu specs.LinuxCPU
	if r.CpuShares != 0 {
		cpu.Shares = ptr(uint64(r.CpuShares))
	}
	if r.CpuQuota != 0 {
		cpu.Quota = ptr(r.CpuQuota)
	}
	if r.CpuPeriod != 0 {
		cpu.Period = ptr(uint64(r.CpuPeriod))
	}
	cpu.Cpus, cpu.Mems = r.CpusetCpus, r.CpusetMems
	if cpu != (specs.LinuxCPU{}) {
		out.CPU = &cpu
	}

	var mem specs.LinuxMemory
	if r.MemoryLimitInBytes != 0 {
		mem.Limit = ptr(r.MemoryLimitInBytes)
		if host.SwapAccounting {
			mem.Swap = ptr(r.MemoryLimitInBytes)
		}
	}
	if r.MemorySwapLimitInBytes != 0 && host.SwapAccounting {
		mem.Swap = ptr(r.MemorySwapLimitInBytes)
	}
	if mem.Limit != nil || mem.Swap != nil {
		out.Memory = &mem
	}

	if host.Hugetlb {
		for _, h := range r.HugepageLimits {
			out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
		}
	}
	if len(r.Unified) != 0 {
		if !host.CgroupV2 {
			return errdefs.InvalidArgument("linux.resources.unified", "cgroup v2 settings on a cgroup v1 host")
		}
		out.Unified = maps.Clone(r.Unified)
	}
	return nil
}

// oomScoreAdj is the requested score, never below the host's floor: lowering it needs CAP_SYS_RESOURCE, and
// without it runc fails to start the container.
func oomScoreAdj(r *LinuxContainerResources, floor int) *int {
	adj := 0
	if r != nil {
		adj = int(max(-1000, min(1000, r.OomScoreAdj)))
	}
	return ptr(max(adj, floor))
}
