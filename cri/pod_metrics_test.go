package cri

import (
	"context"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/sandbox"
)

// kubeletMetrics are the cAdvisor metrics critest (v1.37) requires of ListMetricDescriptors, less those it lists
// as not implemented by runtimes yet.
var kubeletMetrics = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
	"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
	"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
	"container_fs_writes_bytes_total", "container_fs_writes_total", "container_last_seen", "container_memory_cache",
	"container_memory_failcnt", "container_memory_failures_total", "container_memory_kernel_usage",
	"container_memory_mapped_file", "container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap",
	"container_memory_usage_bytes", "container_memory_working_set_bytes", "container_network_receive_bytes_total",
	"container_network_receive_errors_total", "container_network_receive_packets_dropped_total",
	"container_network_receive_packets_total", "container_network_transmit_bytes_total",
	"container_network_transmit_errors_total", "container_network_transmit_packets_dropped_total",
	"container_network_transmit_packets_total", "container_oom_events_total", "container_processes", "container_sockets",
	"container_spec_cpu_period", "container_spec_cpu_shares", "container_spec_memory_limit_bytes",
	"container_spec_memory_swap_limit_bytes", "container_start_time_seconds", "container_threads", "container_threads_max",
}

func TestMetricDescriptors(t *testing.T) {
	var s RuntimeServer
	resp, err := s.ListMetricDescriptors(context.Background(), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range resp.Descriptors {
		if names[d.Name] {
			t.Errorf("%s described twice", d.Name)
		}
		names[d.Name] = true
		if d.Help == "" || len(d.LabelKeys) < len(metricLabels) || !slices.Equal(d.LabelKeys[:len(metricLabels)], metricLabels) {
			t.Errorf("descriptor %+v: want help and the base labels first", d)
		}
	}
	for _, n := range kubeletMetrics {
		if !names[n] {
			t.Errorf("%s is not described", n)
		}
	}
}

// TestMetricMapping checks what the metrics of a container with everything set carry: each one's labels fit its
// descriptor (the kubelet builds Prometheus series from both) and the values are converted.
func TestMetricMapping(t *testing.T) {
	st := &ctr.Stats{
		CPU: ctr.CPUStats{UsageNanos: 7_900_000_000, UserNanos: 5e9, SystemNanos: 2e9, Periods: 10, ThrottledPeriods: 3,
			ThrottledNanos: 1_500_000_000, PSI: &ctr.PSI{Some: ctr.PSIData{Total: 4_000_000}, Full: ctr.PSIData{Total: 1_000_000}}},
		Memory: ctr.MemoryStats{Usage: 1000, MaxUsage: 2000, WorkingSet: 900, RSS: 700, Cache: 300, MappedFile: 20,
			Kernel: 10, Swap: 5, Failcnt: 2, PageFaults: 99, MajorPageFaults: 9, OOMKills: 1},
		Pids:   ctr.PidsStats{Current: 12, Limit: 100, Processes: 3},
		IO:     ctr.IOStats{Devices: []ctr.IODevice{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}}},
		Limits: ctr.Limits{CPUShares: 512, CPUQuota: 20000, Memory: 64 << 20, MemorySwap: -1},
	}
	m := &metricSink{labels: []string{"web-0", "default", "app", "c1", "busybox"}, at: 42}
	cgroupMetrics(m, st)
	specMetrics(m, st.Limits)
	networkMetrics(m, []sandbox.InterfaceStats{{Name: "lo", RxBytes: 1}, {Name: "eth0", RxBytes: 2, TxErrors: 3}})
	if err := fsMetrics(m, t.TempDir(), diskUsage{bytes: 4096, inodes: 2}); err != nil {
		t.Fatal(err)
	}

	descs := map[string]*metricDesc{}
	for _, d := range metricDescs {
		descs[d.name] = d
	}
	got := map[string][]*runtimeapi.Metric{}
	for _, metric := range m.out {
		d := descs[metric.Name]
		if d == nil {
			t.Errorf("%s has no descriptor", metric.Name)
			continue
		}
		if len(metric.LabelValues) != len(metricLabels)+len(d.extra) || metric.MetricType != d.kind || metric.Timestamp != 42 {
			t.Errorf("%s: labels %q, type %v, time %d do not fit its descriptor", metric.Name, metric.LabelValues, metric.MetricType, metric.Timestamp)
		}
		got[metric.Name] = append(got[metric.Name], metric)
	}
	value := func(name string, labels ...string) uint64 {
		t.Helper()
		for _, metric := range got[name] {
			if slices.Equal(metric.LabelValues[len(metricLabels):], labels) {
				return metric.Value.Value
			}
		}
		t.Errorf("no %s%q", name, labels)
		return 0
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   uint64
	}{
		{"container_cpu_usage_seconds_total", nil, 7},
		{"container_cpu_cfs_throttled_seconds_total", nil, 1},
		{"container_pressure_cpu_waiting_seconds_total", nil, 4},
		{"container_pressure_cpu_stalled_seconds_total", nil, 1},
		{"container_memory_working_set_bytes", nil, 900},
		{"container_memory_failures_total", []string{"pgmajfault", "hierarchy"}, 9},
		{"container_oom_events_total", nil, 1},
		{"container_processes", nil, 3},
		{"container_threads", nil, 12},
		{"container_fs_writes_bytes_total", []string{blockDevice(8, 0)}, 8192},
		{"container_blkio_device_usage_total", []string{blockDevice(8, 0), "8", "0", "Read"}, 4096},
		{"container_spec_cpu_period", nil, 100000}, // the kernel's default
		{"container_spec_cpu_shares", nil, 512},
		{"container_spec_cpu_quota", nil, 20000},
		{"container_spec_memory_limit_bytes", nil, 64 << 20},
		{"container_spec_memory_swap_limit_bytes", nil, 0}, // unlimited
		{"container_network_receive_bytes_total", []string{"eth0"}, 2},
		{"container_network_transmit_errors_total", []string{"eth0"}, 3},
	} {
		if v := value(tc.name, tc.labels...); v != tc.want {
			t.Errorf("%s%q = %d, want %d", tc.name, tc.labels, v, tc.want)
		}
	}
	if len(got["container_network_receive_bytes_total"]) != 1 {
		t.Errorf("loopback reported next to eth0: %v", got["container_network_receive_bytes_total"])
	}
	for _, n := range kubeletMetrics {
		if n != "container_last_seen" && n != "container_start_time_seconds" && n != "container_file_descriptors" &&
			n != "container_sockets" && len(got[n]) == 0 {
			t.Errorf("%s not reported", n)
		}
	}
}

func TestNetworkMetricsLoopbackOnly(t *testing.T) {
	m := &metricSink{labels: make([]string, len(metricLabels))}
	networkMetrics(m, []sandbox.InterfaceStats{{Name: "lo", TxBytes: 7}})
	if len(m.out) != 8 || m.out[4].Name != "container_network_transmit_bytes_total" || m.out[4].Value.Value != 7 ||
		m.out[4].LabelValues[len(metricLabels)] != "lo" {
		t.Errorf("metrics of a pod with loopback only: %v", m.out)
	}
}

func TestSpecMetricsWithoutQuota(t *testing.T) {
	m := &metricSink{labels: make([]string, len(metricLabels))}
	specMetrics(m, ctr.Limits{})
	for _, metric := range m.out {
		if metric.Name == mSpecCPUQuota.name {
			t.Errorf("quota reported without one: %v", metric)
		}
		if metric.Name == mSpecCPUShares.name && metric.Value.Value != 1024 {
			t.Errorf("default shares = %d", metric.Value.Value)
		}
	}
}

func TestSeconds(t *testing.T) {
	for ns, want := range map[uint64]uint64{0: 0, 999_999_999: 0, 1e9: 1, uint64(90 * time.Second): 90} {
		if got := seconds(ns); got != want {
			t.Errorf("seconds(%d) = %d, want %d", ns, got, want)
		}
	}
}
