package ctr

import (
	"math"
	"reflect"
	"testing"

	"github.com/opencontainers/cgroups"
)

func TestConvertStats(t *testing.T) {
	const mib = 1 << 20
	psi := &cgroups.PSIStats{Some: cgroups.PSIData{Avg10: 1.5, Total: 300}, Full: cgroups.PSIData{Total: 100}}
	io := cgroups.BlkioStats{
		IoServiceBytesRecursive: []cgroups.BlkioStatEntry{
			{Major: 8, Minor: 16, Op: "Read", Value: 10}, {Major: 8, Minor: 0, Op: "Read", Value: 4096},
			{Major: 8, Minor: 0, Op: "Write", Value: 8192}, {Major: 8, Minor: 0, Op: "Total", Value: 12288},
		},
		IoServicedRecursive: []cgroups.BlkioStatEntry{{Major: 8, Minor: 0, Op: "Read", Value: 1}, {Major: 8, Minor: 0, Op: "Write", Value: 2}},
	}
	wantIO := []IODevice{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}, {Major: 8, Minor: 16, ReadBytes: 10}}
	for name, tc := range map[string]struct {
		in   cgroups.Stats
		v2   bool
		want Stats
	}{
		"v1 limited": {
			in: cgroups.Stats{
				CpuStats: cgroups.CpuStats{CpuUsage: cgroups.CpuUsage{TotalUsage: 9, UsageInUsermode: 6, UsageInKernelmode: 3},
					ThrottlingData: cgroups.ThrottlingData{Periods: 5, ThrottledPeriods: 2, ThrottledTime: 7}},
				MemoryStats: cgroups.MemoryStats{
					Usage:       cgroups.MemoryData{Usage: 10 * mib, MaxUsage: 12 * mib, Failcnt: 4, Limit: 64 * mib},
					SwapUsage:   cgroups.MemoryData{Usage: 11 * mib, Limit: 96 * mib},
					KernelUsage: cgroups.MemoryData{Usage: mib},
					Stats: map[string]uint64{"total_rss": 6 * mib, "total_cache": 4 * mib, "total_mapped_file": 2 * mib,
						"total_inactive_file": 3 * mib, "total_pgfault": 100, "total_pgmajfault": 10,
						"rss": 1, "cache": 1, "inactive_file": 1, "pgfault": 1, "anon": 1, "file": 1},
				},
				PidsStats:  cgroups.PidsStats{Current: 4, Limit: 100},
				BlkioStats: io,
			},
			want: Stats{
				CPU: CPUStats{UsageNanos: 9, UserNanos: 6, SystemNanos: 3, Periods: 5, ThrottledPeriods: 2, ThrottledNanos: 7},
				Memory: MemoryStats{Usage: 10 * mib, MaxUsage: 12 * mib, WorkingSet: 7 * mib, RSS: 6 * mib, Cache: 4 * mib,
					MappedFile: 2 * mib, Kernel: mib, Swap: mib, Limit: 64 * mib, MemSwapLimit: 96 * mib, Failcnt: 4,
					PageFaults: 100, MajorPageFaults: 10},
				Pids: PidsStats{Current: 4, Limit: 100},
				IO:   IOStats{Devices: wantIO},
			},
		},
		"v1 unlimited, no swap accounting": {
			in: cgroups.Stats{MemoryStats: cgroups.MemoryStats{
				Usage: cgroups.MemoryData{Usage: 10 * mib, Limit: math.MaxInt64 &^ 4095},
				Stats: map[string]uint64{"total_inactive_file": 20 * mib}, // more than usage: working set 0
			}, PidsStats: cgroups.PidsStats{Limit: math.MaxUint64}},
			want: Stats{Memory: MemoryStats{Usage: 10 * mib}},
		},
		"v2": {
			v2: true,
			in: cgroups.Stats{
				CpuStats: cgroups.CpuStats{CpuUsage: cgroups.CpuUsage{TotalUsage: 9}, PSI: psi},
				MemoryStats: cgroups.MemoryStats{
					Usage:     cgroups.MemoryData{Usage: 10 * mib, MaxUsage: 11 * mib, Limit: 64 * mib},
					SwapUsage: cgroups.MemoryData{Usage: 10 * mib, Limit: math.MaxUint64}, // swap.max is "max"
					Stats: map[string]uint64{"anon": 6 * mib, "file": 4 * mib, "file_mapped": 2 * mib, "inactive_file": 3 * mib,
						"pgfault": 100, "pgmajfault": 10, "kernel": mib, "total_rss": 1},
					PSI: psi,
				},
				BlkioStats: cgroups.BlkioStats{PSI: psi},
			},
			want: Stats{
				CPU: CPUStats{UsageNanos: 9, PSI: &PSI{Some: PSIData{Avg10: 1.5, Total: 300}, Full: PSIData{Total: 100}}},
				Memory: MemoryStats{Usage: 10 * mib, MaxUsage: 11 * mib, WorkingSet: 7 * mib, RSS: 6 * mib, Cache: 4 * mib,
					MappedFile: 2 * mib, Kernel: mib, Limit: 64 * mib, PageFaults: 100, MajorPageFaults: 10,
					PSI: &PSI{Some: PSIData{Avg10: 1.5, Total: 300}, Full: PSIData{Total: 100}}},
				IO: IOStats{PSI: &PSI{Some: PSIData{Avg10: 1.5, Total: 300}, Full: PSIData{Total: 100}}},
			},
		},
		"v2 kernel memory before 5.18": {
			v2:   true,
			in:   cgroups.Stats{MemoryStats: cgroups.MemoryStats{Stats: map[string]uint64{"kernel_stack": 1, "slab": 2, "sock": 3, "percpu": 4}}},
			want: Stats{Memory: MemoryStats{Kernel: 10}},
		},
	} {
		got := convertStats(&tc.in, tc.v2)
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", name, *got, tc.want)
		}
	}
}
