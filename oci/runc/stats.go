package runc

import (
	"fmt"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// Stats are a container's cgroup counters, on cgroup v1 and v2 alike.
type Stats struct {
	Timestamp time.Time
	CPU       CPUStats
	Memory    MemoryStats
	Pids      PidsStats
}

// CPUStats are cumulative CPU times.
type CPUStats struct {
	UsageNanos       uint64
	UserNanos        uint64
	SystemNanos      uint64
	ThrottledPeriods uint64
	ThrottledNanos   uint64
}

// MemoryStats are in bytes, except the fault counts.
type MemoryStats struct {
	Usage           uint64
	WorkingSet      uint64 // usage minus inactive file pages, as cAdvisor and the kubelet count it
	RSS             uint64 // anonymous memory
	Cache           uint64 // file pages
	Limit           uint64 // 0 when unlimited
	PageFaults      uint64
	MajorPageFaults uint64
	OOMKills        uint64
}

// PidsStats count the container's tasks.
type PidsStats struct {
	Current uint64
	Limit   uint64 // 0 when unlimited
}

// unlimited is above any real limit: cgroup v1 reports "no limit" as a page-rounded 2^63.
const unlimited = 1 << 62

// Stats reads the container's cgroup.
func (c *Container) Stats() (*Stats, error) {
	cs, err := c.cg.Stats(&cgroups.StatsOptions{Controllers: cgroups.CPU | cgroups.Memory | cgroups.Pids})
	if err != nil {
		return nil, fmt.Errorf("container %s: stats: %w", c.ID(), err)
	}
	s := &Stats{Timestamp: time.Now()}
	cpu := cs.CpuStats
	s.CPU = CPUStats{
		UsageNanos:       cpu.CpuUsage.TotalUsage,
		UserNanos:        cpu.CpuUsage.UsageInUsermode,
		SystemNanos:      cpu.CpuUsage.UsageInKernelmode,
		ThrottledPeriods: cpu.ThrottlingData.ThrottledPeriods,
		ThrottledNanos:   cpu.ThrottlingData.ThrottledTime,
	}
	mem := cs.MemoryStats
	// cgroup v1 names the hierarchical counters total_*; v2 counters are hierarchical already.
	key := func(v1, v2 string) uint64 {
		if cgroups.IsCgroup2UnifiedMode() {
			return mem.Stats[v2]
		}
		return mem.Stats[v1]
	}
	s.Memory = MemoryStats{
		Usage:           mem.Usage.Usage,
		RSS:             key("total_rss", "anon"),
		Cache:           key("total_cache", "file"),
		PageFaults:      key("total_pgfault", "pgfault"),
		MajorPageFaults: key("total_pgmajfault", "pgmajfault"),
	}
	if inactive := key("total_inactive_file", "inactive_file"); inactive < s.Memory.Usage {
		s.Memory.WorkingSet = s.Memory.Usage - inactive
	}
	if mem.Usage.Limit < unlimited {
		s.Memory.Limit = mem.Usage.Limit
	}
	if s.Memory.OOMKills, err = c.OOMKillCount(); err != nil {
		return nil, err
	}
	s.Pids = PidsStats{Current: cs.PidsStats.Current}
	if cs.PidsStats.Limit < unlimited {
		s.Pids.Limit = cs.PidsStats.Limit
	}
	return s, nil
}

// OOMKillCount is the number of the container's processes the kernel OOM-killed. Read it before
// Destroy, which removes the counter with the cgroup.
func (c *Container) OOMKillCount() (uint64, error) {
	n, err := c.cg.OOMKillCount()
	if err != nil {
		return 0, fmt.Errorf("container %s: oom kill count: %w", c.ID(), err)
	}
	return n, nil
}

// Update applies new resource limits to a created or running container. Device rules are kept: the
// CRI update carries none.
func (c *Container) Update(r *specs.LinuxResources) error {
	if r == nil {
		return errdefs.InvalidArgument("resources", "nil")
	}
	cfg := c.lc.Config()
	conv, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{
		CgroupName: c.ID(),
		Spec:       &specs.Spec{Linux: &specs.Linux{Resources: r}},
	}, nil)
	if err != nil {
		return errdefs.InvalidArgument("resources", "container %s: %v", c.ID(), err)
	}
	res := *conv.Resources
	res.Devices = cfg.Cgroups.Resources.Devices
	cg := *cfg.Cgroups
	cg.Resources = &res
	cfg.Cgroups = &cg
	if err := c.lc.Set(cfg); err != nil {
		return wrapErr(c.ID(), "update resources", err)
	}
	return nil
}
