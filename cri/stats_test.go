package cri

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/sandbox"
)

func TestMatchStatsFilter(t *testing.T) {
	rec := containerRecord{ID: "abc123", PodID: "pod789",
		Config: &runtimeapi.ContainerConfig{Labels: map[string]string{"app": "web", "tier": "front"}}}
	for name, tc := range map[string]struct {
		filter *runtimeapi.ContainerStatsFilter
		want   bool
	}{
		"nil filter":       {nil, true},
		"empty filter":     {&runtimeapi.ContainerStatsFilter{}, true},
		"id":               {&runtimeapi.ContainerStatsFilter{Id: "abc123"}, true},
		"id prefix":        {&runtimeapi.ContainerStatsFilter{Id: "abc"}, true},
		"other id":         {&runtimeapi.ContainerStatsFilter{Id: "abd"}, false},
		"pod":              {&runtimeapi.ContainerStatsFilter{PodSandboxId: "pod789"}, true},
		"other pod":        {&runtimeapi.ContainerStatsFilter{PodSandboxId: "pod7890"}, false},
		"label":            {&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"app": "web"}}, true},
		"labels":           {&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"app": "web", "tier": "front"}}, true},
		"label value":      {&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"app": "db"}}, false},
		"missing label":    {&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"zone": ""}}, true},
		"id and other pod": {&runtimeapi.ContainerStatsFilter{Id: "abc", PodSandboxId: "x"}, false},
	} {
		if got := matchStatsFilter(rec, tc.filter); got != tc.want {
			t.Errorf("%s: match = %v, want %v", name, got, tc.want)
		}
	}
}

func TestCPUSampler(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type reading struct {
		key     string
		usage   uint64
		at      time.Duration // after t0
		rate    uint64
		hasRate bool
	}
	for name, readings := range map[string][]reading{
		"first reading has no rate": {{"c", 5e9, 0, 0, false}},
		"one core for two seconds": {
			{"c", 1e9, 0, 0, false},
			{"c", 3e9, 2 * time.Second, 1e9, true},
		},
		"half a core, then idle": {
			{"c", 0, 0, 0, false},
			{"c", 5e8, time.Second, 5e8, true},
			{"c", 5e8, 3 * time.Second, 0, true},
		},
		"too close: previous rate": {
			{"c", 0, 0, 0, false},
			{"c", 2e9, time.Second, 2e9, true},
			{"c", 9e9, time.Second + 10*time.Millisecond, 2e9, true},
			// measured from the reading at 1 s, not from the close one
			{"c", 3e9, 2 * time.Second, 1e9, true},
		},
		"too close to the first: no rate yet": {
			{"c", 0, 0, 0, false},
			{"c", 1e9, 100 * time.Millisecond, 0, false},
		},
		"counter went back: start over": {
			{"c", 8e9, 0, 0, false},
			{"c", 1e9, 2 * time.Second, 0, false},
			{"c", 2e9, 3 * time.Second, 1e9, true},
		},
		"clock went back: start over": {
			{"c", 1e9, 5 * time.Second, 0, false},
			{"c", 2e9, 2 * time.Second, 0, false},
		},
		"keys apart": {
			{"c", 0, 0, 0, false},
			{"pod/c", 0, 0, 0, false},
			{"c", 1e9, time.Second, 1e9, true},
			{"pod/c", 4e9, 2 * time.Second, 2e9, true},
		},
		"large counters do not overflow": {
			{"c", 1 << 62, 0, 0, false},
			{"c", 1<<62 + 64e9, 32 * time.Second, 2e9, true},
		},
	} {
		var c cpuSampler
		for i, r := range readings {
			rate, ok := c.observe(r.key, r.usage, t0.Add(r.at))
			if rate != r.rate || ok != r.hasRate {
				t.Errorf("%s: reading %d: rate %d, %v; want %d, %v", name, i, rate, ok, r.rate, r.hasRate)
			}
		}
	}
}

func TestCPUSamplerForgetsOldReadings(t *testing.T) {
	var c cpuSampler
	t0 := time.Unix(1000, 0)
	c.observe("gone", 1, t0)
	c.observe("live", 1, t0.Add(cpuSampleTTL))
	c.observe("live", 2, t0.Add(2*cpuSampleTTL))
	if _, ok := c.last["gone"]; ok || len(c.last) != 1 {
		t.Errorf("readings after two TTLs: %v", c.last)
	}
}

func TestDU(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "a", "big")
	if err := os.WriteFile(big, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(big, filepath.Join(dir, "a", "b", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("big", filepath.Join(dir, "a", "sym")); err != nil {
		t.Fatal(err)
	}
	u, err := du(dir)
	if err != nil {
		t.Fatal(err)
	}
	// dir, a, a/b, big (its second link is not counted again), sym
	if u.inodes != 5 {
		t.Errorf("inodes = %d, want 5", u.inodes)
	}
	if u.bytes < 64<<10 || u.bytes >= 2*64<<10 {
		t.Errorf("bytes = %d, want the 64 KiB file once plus directories", u.bytes)
	}
	if _, err := du(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("du of a missing dir: %v", err)
	}
}

func TestLayerUsage(t *testing.T) {
	var mu sync.Mutex
	walks := map[string]int{}
	missing := map[string]bool{}
	refreshed := make(chan struct{}, 10)
	l := newLayerUsage(slog.New(slog.DiscardHandler))
	l.walk = func(dir string) (diskUsage, error) {
		mu.Lock()
		defer mu.Unlock()
		walks[dir]++
		defer func() { refreshed <- struct{}{} }()
		if missing[dir] {
			return diskUsage{}, fs.ErrNotExist
		}
		return diskUsage{bytes: uint64(walks[dir]) * 100, inodes: 1, at: time.Now()}, nil
	}
	now := time.Now()
	get := func(dir string, at time.Time) diskUsage {
		t.Helper()
		u, err := l.get(dir, at)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := get("a", now); u.bytes != 100 {
		t.Fatalf("first get = %+v, want a walk", u)
	}
	<-refreshed
	if u := get("a", now.Add(time.Second)); u.bytes != 100 || walks["a"] != 1 {
		t.Errorf("get within the TTL = %+v after %d walks, want the cached value", u, walks["a"])
	}
	// Past the TTL: the stale value comes back at once, a background walk refreshes it.
	if u := get("a", now.Add(2*layerUsageTTL)); u.bytes != 100 {
		t.Errorf("stale get = %+v, want the cached value", u)
	}
	<-refreshed
	waitFor(t, func() bool { u := get("a", time.Now()); return u.bytes == 200 })

	mu.Lock()
	missing["a"] = true
	mu.Unlock()
	get("a", time.Now().Add(2*layerUsageTTL))
	<-refreshed
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.entries["a"] == nil })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
	}
}

func TestMemoryAndSwapUsage(t *testing.T) {
	at := time.Unix(50, 0)
	for name, tc := range map[string]struct {
		mem           ctr.MemoryStats
		available     *uint64
		swapAvailable *uint64
	}{
		"unlimited": {mem: ctr.MemoryStats{Usage: 300, WorkingSet: 200}},
		"limited": {mem: ctr.MemoryStats{Usage: 300, WorkingSet: 200, Limit: 1000, Swap: 50, MemSwapLimit: 1080},
			available: ptrU(800), swapAvailable: ptrU(30)},
		"no swap allowed": {mem: ctr.MemoryStats{Usage: 300, WorkingSet: 200, Limit: 1000, MemSwapLimit: 1000},
			available: ptrU(800), swapAvailable: ptrU(0)},
		"swap unlimited": {mem: ctr.MemoryStats{WorkingSet: 200, Limit: 1000, Swap: 10}, available: ptrU(800)},
		"over the limit": {mem: ctr.MemoryStats{WorkingSet: 1200, Limit: 1000, Swap: 90, MemSwapLimit: 1080},
			available: ptrU(0), swapAvailable: ptrU(0)},
	} {
		st := &ctr.Stats{Timestamp: at, Memory: tc.mem}
		m := memoryUsage(st)
		if m.GetTimestamp() != at.UnixNano() || m.GetWorkingSetBytes().GetValue() != tc.mem.WorkingSet ||
			m.GetUsageBytes().GetValue() != tc.mem.Usage {
			t.Errorf("%s: memory = %v", name, m)
		}
		if (m.AvailableBytes == nil) != (tc.available == nil) || tc.available != nil && m.AvailableBytes.Value != *tc.available {
			t.Errorf("%s: available = %v, want %v", name, m.AvailableBytes, tc.available)
		}
		s := swapUsage(st)
		if s.GetSwapUsageBytes().GetValue() != tc.mem.Swap {
			t.Errorf("%s: swap = %v", name, s)
		}
		if (s.SwapAvailableBytes == nil) != (tc.swapAvailable == nil) || tc.swapAvailable != nil && s.SwapAvailableBytes.Value != *tc.swapAvailable {
			t.Errorf("%s: swap available = %v, want %v", name, s.SwapAvailableBytes, tc.swapAvailable)
		}
	}
}

func ptrU(v uint64) *uint64 { return &v }

func TestNetworkUsage(t *testing.T) {
	for name, tc := range map[string]struct {
		ifs         []sandbox.InterfaceStats
		wantNames   []string
		wantDefault string
	}{
		"loopback only": {ifs: []sandbox.InterfaceStats{{Name: "lo"}}},
		"eth0":          {ifs: []sandbox.InterfaceStats{{Name: "lo"}, {Name: "eth0", RxBytes: 5}}, wantNames: []string{"eth0"}, wantDefault: "eth0"},
		"eth0 second":   {ifs: []sandbox.InterfaceStats{{Name: "net1"}, {Name: "eth0"}}, wantNames: []string{"net1", "eth0"}, wantDefault: "eth0"},
		"no eth0":       {ifs: []sandbox.InterfaceStats{{Name: "net1"}, {Name: "net2"}}, wantNames: []string{"net1", "net2"}, wantDefault: "net1"},
	} {
		u := networkUsage(tc.ifs, time.Unix(1, 0))
		var names []string
		for _, i := range u.Interfaces {
			names = append(names, i.Name)
		}
		if !slices.Equal(names, tc.wantNames) || u.GetDefaultInterface().GetName() != tc.wantDefault {
			t.Errorf("%s: interfaces %v, default %q; want %v, %q", name, names, u.GetDefaultInterface().GetName(), tc.wantNames, tc.wantDefault)
		}
	}
}
