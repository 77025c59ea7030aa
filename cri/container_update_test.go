package cri

import (
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMergeResources(t *testing.T) {
	cur := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
		MemoryLimitInBytes: 64 << 20, OomScoreAdj: 500, CpusetCpus: "0", CpusetMems: "0",
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:        map[string]string{"memory.high": "50M"}}
	for name, tc := range map[string]struct {
		cur, upd, want *runtimeapi.LinuxContainerResources
	}{
		"empty update keeps all": {cur: cur, upd: &runtimeapi.LinuxContainerResources{}, want: cur},
		"resize": {cur: cur,
			upd: &runtimeapi.LinuxContainerResources{CpuQuota: 80000, CpuShares: 819, MemoryLimitInBytes: 128 << 20, OomScoreAdj: -999},
			want: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 80000, CpuShares: 819,
				MemoryLimitInBytes: 128 << 20, OomScoreAdj: 500, CpusetCpus: "0", CpusetMems: "0",
				HugepageLimits: cur.HugepageLimits, Unified: cur.Unified}},
		"cpusets, swap, hugepages and unified merge": {cur: cur,
			upd: &runtimeapi.LinuxContainerResources{CpusetCpus: "0-1", MemorySwapLimitInBytes: 256 << 20,
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 22}, {PageSize: "1GB", Limit: 1 << 30}},
				Unified:        map[string]string{"memory.high": "60M", "pids.max": "10"}},
			want: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
				MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 256 << 20, OomScoreAdj: 500, CpusetCpus: "0-1", CpusetMems: "0",
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 22}, {PageSize: "1GB", Limit: 1 << 30}},
				Unified:        map[string]string{"memory.high": "60M", "pids.max": "10"}}},
		"nothing before": {cur: nil, upd: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20},
			want: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20}},
	} {
		before := proto.Clone(cur)
		got := mergeResources(tc.cur, tc.upd)
		if !proto.Equal(got, tc.want) {
			t.Errorf("%s: merged\n%v\nwant\n%v", name, got, tc.want)
		}
		if !proto.Equal(cur, before) {
			t.Errorf("%s: the current resources were modified", name)
		}
	}
}
