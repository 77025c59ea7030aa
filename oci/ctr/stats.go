package ctr

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// Stats are a cgroup's counters, on cgroup v1 and v2 alike.
type Stats struct {
	Timestamp time.Time
	CPU       CPUStats
	Memory    MemoryStats
	Pids      PidsStats
	IO        IOStats
	Limits    Limits
}

// CPUStats are cumulative CPU times and CFS bandwidth counters.
type CPUStats struct {
	UsageNanos       uint64
	UserNanos        uint64
	SystemNanos      uint64
	Periods          uint64 // CFS enforcement periods elapsed
	ThrottledPeriods uint64
	ThrottledNanos   uint64
	PSI              *PSI // cgroup v2 only
}

// MemoryStats are in bytes, except the counts.
type MemoryStats struct {
	Usage           uint64
	MaxUsage        uint64 // peak usage; 0 when the kernel does not record it
	WorkingSet      uint64 // usage minus inactive file pages, as cAdvisor and the kubelet count it
	RSS             uint64 // anonymous memory
	Cache           uint64 // file pages
	MappedFile      uint64
	Kernel          uint64
	Swap            uint64 // swap alone, not memory+swap
	Limit           uint64 // 0 when unlimited
	MemSwapLimit    uint64 // memory+swap; 0 when unlimited or swap is not accounted
	Failcnt         uint64 // times the limit was hit (cgroup v1 only)
	PageFaults      uint64
	MajorPageFaults uint64
	OOMKills        uint64
	PSI             *PSI // cgroup v2 only
}

// PidsStats count the cgroup's tasks.
type PidsStats struct {
	Current   uint64 // tasks, i.e. threads
	Limit     uint64 // 0 when unlimited
	Processes uint64
}

// IOStats are cumulative block I/O counters by device.
type IOStats struct {
	Devices []IODevice
	PSI     *PSI // cgroup v2 only
}

// IODevice is the I/O a cgroup did on one block device.
type IODevice struct {
	Major, Minor          uint64
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// PSI is pressure stall information: the share of time tasks waited for a resource.
type PSI struct {
	Some, Full PSIData
}

// PSIData are the averages over 10, 60 and 300 s (percent) and the total stall time (µs).
type PSIData struct {
	Total                uint64
	Avg10, Avg60, Avg300 float64
}

// Limits are the resources the cgroup was configured with; 0 is not set.
type Limits struct {
	CPUShares  uint64
	CPUPeriod  uint64
	CPUQuota   int64
	Memory     int64
	MemorySwap int64 // memory+swap, as in the OCI spec
}

// unlimited is above any real limit: cgroup v1 reports "no limit" as a page-rounded 2^63.
const unlimited = 1 << 62

// CgroupStats reads the counters of any cgroup, such as a pod's: the container's or its parent's.
func CgroupStats(m cgroups.Manager) (*Stats, error) {
	cs, err := m.Stats(&cgroups.StatsOptions{Controllers: cgroups.CPU | cgroups.Memory | cgroups.Pids | cgroups.IO})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	s := convertStats(cs, cgroups.IsCgroup2UnifiedMode())
	s.Timestamp = time.Now()
	if s.Memory.OOMKills, err = m.OOMKillCount(); err != nil {
		return nil, fmt.Errorf("oom kill count: %w", err)
	}
	// The pids hierarchy holds every process of the cgroup on v1 (exec sub-cgroups live in freezer's only).
	dir := m.Path("pids")
	if dir == "" {
		dir = m.Path("")
	}
	if dir != "" {
		pids, err := cgroups.GetAllPids(dir)
		// ENODEV: the cgroup was removed while being read.
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("list processes: %w", err)
		}
		s.Pids.Processes = uint64(len(pids))
	}
	if cg, err := m.GetCgroups(); err == nil && cg.Resources != nil {
		r := cg.Resources
		s.Limits = Limits{CPUShares: r.CpuShares, CPUPeriod: r.CpuPeriod, CPUQuota: r.CpuQuota, Memory: r.Memory,
			MemorySwap: r.MemorySwap}
	}
	return s, nil
}

// convertStats maps the library's counters, whose memory keys differ between v1 and v2, to Stats.
func convertStats(cs *cgroups.Stats, v2 bool) *Stats {
	s := &Stats{}
	cpu := cs.CpuStats
	s.CPU = CPUStats{
		UsageNanos:       cpu.CpuUsage.TotalUsage,
		UserNanos:        cpu.CpuUsage.UsageInUsermode,
		SystemNanos:      cpu.CpuUsage.UsageInKernelmode,
		Periods:          cpu.ThrottlingData.Periods,
		ThrottledPeriods: cpu.ThrottlingData.ThrottledPeriods,
		ThrottledNanos:   cpu.ThrottlingData.ThrottledTime,
		PSI:              convertPSI(cpu.PSI),
	}
	mem := cs.MemoryStats
	// cgroup v1 names the hierarchical counters total_*; v2 counters are hierarchical already.
	key := func(v1, v2Key string) uint64 {
		if v2 {
			return mem.Stats[v2Key]
		}
		return mem.Stats[v1]
	}
	s.Memory = MemoryStats{
		Usage:           mem.Usage.Usage,
		MaxUsage:        mem.Usage.MaxUsage,
		RSS:             key("total_rss", "anon"),
		Cache:           key("total_cache", "file"),
		MappedFile:      key("total_mapped_file", "file_mapped"),
		Failcnt:         mem.Usage.Failcnt,
		PageFaults:      key("total_pgfault", "pgfault"),
		MajorPageFaults: key("total_pgmajfault", "pgmajfault"),
		PSI:             convertPSI(mem.PSI),
	}
	if inactive := key("total_inactive_file", "inactive_file"); inactive < s.Memory.Usage {
		s.Memory.WorkingSet = s.Memory.Usage - inactive
	}
	if mem.Usage.Limit < unlimited {
		s.Memory.Limit = mem.Usage.Limit
	}
	// SwapUsage is memory+swap on both versions (the library emulates v1 on v2).
	if mem.SwapUsage.Usage > mem.Usage.Usage {
		s.Memory.Swap = mem.SwapUsage.Usage - mem.Usage.Usage
	}
	if mem.SwapUsage.Limit < unlimited {
		s.Memory.MemSwapLimit = mem.SwapUsage.Limit
	}
	if v2 {
		s.Memory.Kernel = mem.Stats["kernel"]
		if s.Memory.Kernel == 0 { // kernels before 5.18
			s.Memory.Kernel = mem.Stats["kernel_stack"] + mem.Stats["slab"] + mem.Stats["sock"] + mem.Stats["percpu"]
		}
	} else {
		s.Memory.Kernel = mem.KernelUsage.Usage
	}
	s.Pids = PidsStats{Current: cs.PidsStats.Current}
	if cs.PidsStats.Limit < unlimited {
		s.Pids.Limit = cs.PidsStats.Limit
	}
	s.IO = convertIO(&cs.BlkioStats)
	return s
}

// convertIO sums the read and write entries by device (v2 is mapped to the v1 tables by the library).
func convertIO(b *cgroups.BlkioStats) IOStats {
	var devs []IODevice
	dev := func(major, minor uint64) *IODevice {
		for i := range devs {
			if devs[i].Major == major && devs[i].Minor == minor {
				return &devs[i]
			}
		}
		devs = append(devs, IODevice{Major: major, Minor: minor})
		return &devs[len(devs)-1]
	}
	for _, e := range b.IoServiceBytesRecursive {
		switch e.Op {
		case "Read":
			dev(e.Major, e.Minor).ReadBytes += e.Value
		case "Write":
			dev(e.Major, e.Minor).WriteBytes += e.Value
		}
	}
	for _, e := range b.IoServicedRecursive {
		switch e.Op {
		case "Read":
			dev(e.Major, e.Minor).Reads += e.Value
		case "Write":
			dev(e.Major, e.Minor).Writes += e.Value
		}
	}
	slices.SortFunc(devs, func(a, b IODevice) int {
		return cmp.Or(cmp.Compare(a.Major, b.Major), cmp.Compare(a.Minor, b.Minor))
	})
	return IOStats{Devices: devs, PSI: convertPSI(b.PSI)}
}

func convertPSI(p *cgroups.PSIStats) *PSI {
	if p == nil {
		return nil
	}
	data := func(d cgroups.PSIData) PSIData {
		return PSIData{Total: d.Total, Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300}
	}
	return &PSI{Some: data(p.Some), Full: data(p.Full)}
}
