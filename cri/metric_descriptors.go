package cri

import (
	"context"
	"slices"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet serves /metrics/cadvisor from ListMetricDescriptors and ListPodSandboxMetrics when it takes its stats
// from the CRI: the metrics keep cAdvisor's names and labels, so dashboards and alerts keep working. Values are
// integers (the CRI carries uint64), so seconds are whole seconds, as in containerd and CRI-O.

// metricDesc is one metric berth reports.
type metricDesc struct {
	name, help string
	kind       runtimeapi.MetricType
	extra      []string // label keys after metricLabels
}

// metricLabels come first on every metric: the pod's name and namespace, then the container's name, id and image
// (id is the pod's and the others empty on a pod-level metric).
var metricLabels = []string{"pod", "namespace", "container", "id", "image"}

const (
	counter = runtimeapi.MetricType_COUNTER
	gauge   = runtimeapi.MetricType_GAUGE
)

var (
	mCPUUsage          = &metricDesc{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", counter, nil}
	mCPUUser           = &metricDesc{"container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", counter, nil}
	mCPUSystem         = &metricDesc{"container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", counter, nil}
	mCFSPeriods        = &metricDesc{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil}
	mCFSThrottled      = &metricDesc{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil}
	mCFSThrottledTime  = &metricDesc{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled, in seconds.", counter, nil}
	mCPUWaiting        = &metricDesc{"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion (cgroup v2).", counter, nil}
	mCPUStalled        = &metricDesc{"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion (cgroup v2).", counter, nil}
	mMemoryCache       = &metricDesc{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil}
	mMemoryRSS         = &metricDesc{"container_memory_rss", "Size of RSS (anonymous memory) in bytes.", gauge, nil}
	mMemoryKernel      = &metricDesc{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil}
	mMemoryMapped      = &metricDesc{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil}
	mMemorySwap        = &metricDesc{"container_memory_swap", "Container swap usage in bytes.", gauge, nil}
	mMemoryFailcnt     = &metricDesc{"container_memory_failcnt", "Number of times memory usage hit the limit (cgroup v1; 0 on v2).", counter, nil}
	mMemoryUsage       = &metricDesc{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", gauge, nil}
	mMemoryMaxUsage    = &metricDesc{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", gauge, nil}
	mMemoryWorkingSet  = &metricDesc{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil}
	mMemoryFailures    = &metricDesc{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"}}
	mMemoryWaiting     = &metricDesc{"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion (cgroup v2).", counter, nil}
	mMemoryStalled     = &metricDesc{"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion (cgroup v2).", counter, nil}
	mOOMEvents         = &metricDesc{"container_oom_events_total", "Count of out of memory events observed for the container.", counter, nil}
	mFsInodesFree      = &metricDesc{"container_fs_inodes_free", "Number of available inodes.", gauge, []string{"device"}}
	mFsInodesTotal     = &metricDesc{"container_fs_inodes_total", "Number of inodes.", gauge, []string{"device"}}
	mFsLimit           = &metricDesc{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"}}
	mFsUsage           = &metricDesc{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"}}
	mFsReadBytes       = &metricDesc{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", counter, []string{"device"}}
	mFsReads           = &metricDesc{"container_fs_reads_total", "Cumulative count of reads completed.", counter, []string{"device"}}
	mFsWriteBytes      = &metricDesc{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", counter, []string{"device"}}
	mFsWrites          = &metricDesc{"container_fs_writes_total", "Cumulative count of writes completed.", counter, []string{"device"}}
	mBlkioUsage        = &metricDesc{"container_blkio_device_usage_total", "Blkio device bytes usage.", counter, []string{"device", "major", "minor", "operation"}}
	mIOWaiting         = &metricDesc{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to I/O congestion (cgroup v2).", counter, nil}
	mIOStalled         = &metricDesc{"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to I/O congestion (cgroup v2).", counter, nil}
	mNetRxBytes        = &metricDesc{"container_network_receive_bytes_total", "Cumulative count of bytes received.", counter, []string{"interface"}}
	mNetRxPackets      = &metricDesc{"container_network_receive_packets_total", "Cumulative count of packets received.", counter, []string{"interface"}}
	mNetRxDropped      = &metricDesc{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", counter, []string{"interface"}}
	mNetRxErrors       = &metricDesc{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", counter, []string{"interface"}}
	mNetTxBytes        = &metricDesc{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", counter, []string{"interface"}}
	mNetTxPackets      = &metricDesc{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", counter, []string{"interface"}}
	mNetTxDropped      = &metricDesc{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", counter, []string{"interface"}}
	mNetTxErrors       = &metricDesc{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", counter, []string{"interface"}}
	mProcesses         = &metricDesc{"container_processes", "Number of processes running inside the container.", gauge, nil}
	mThreads           = &metricDesc{"container_threads", "Number of threads running inside the container.", gauge, nil}
	mThreadsMax        = &metricDesc{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", gauge, nil}
	mFileDescriptors   = &metricDesc{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil}
	mSockets           = &metricDesc{"container_sockets", "Number of open sockets for the container.", gauge, nil}
	mLastSeen          = &metricDesc{"container_last_seen", "Last time a container was seen by the exporter.", gauge, nil}
	mStartTime         = &metricDesc{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil}
	mSpecCPUPeriod     = &metricDesc{"container_spec_cpu_period", "CPU period of the container.", gauge, nil}
	mSpecCPUQuota      = &metricDesc{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil}
	mSpecCPUShares     = &metricDesc{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil}
	mSpecMemoryLimit   = &metricDesc{"container_spec_memory_limit_bytes", "Memory limit for the container, 0 when unlimited.", gauge, nil}
	mSpecMemorySwapMax = &metricDesc{"container_spec_memory_swap_limit_bytes", "Memory plus swap limit for the container, 0 when unlimited.", gauge, nil}
)

var metricDescs = []*metricDesc{
	mCPUUsage, mCPUUser, mCPUSystem, mCFSPeriods, mCFSThrottled, mCFSThrottledTime, mCPUWaiting, mCPUStalled,
	mMemoryCache, mMemoryRSS, mMemoryKernel, mMemoryMapped, mMemorySwap, mMemoryFailcnt, mMemoryUsage,
	mMemoryMaxUsage, mMemoryWorkingSet, mMemoryFailures, mMemoryWaiting, mMemoryStalled, mOOMEvents,
	mFsInodesFree, mFsInodesTotal, mFsLimit, mFsUsage, mFsReadBytes, mFsReads, mFsWriteBytes, mFsWrites, mBlkioUsage,
	mIOWaiting, mIOStalled,
	mNetRxBytes, mNetRxPackets, mNetRxDropped, mNetRxErrors, mNetTxBytes, mNetTxPackets, mNetTxDropped, mNetTxErrors,
	mProcesses, mThreads, mThreadsMax, mFileDescriptors, mSockets, mLastSeen, mStartTime,
	mSpecCPUPeriod, mSpecCPUQuota, mSpecCPUShares, mSpecMemoryLimit, mSpecMemorySwapMax,
}

func (s *RuntimeServer) ListMetricDescriptors(ctx context.Context, r *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	out := make([]*runtimeapi.MetricDescriptor, 0, len(metricDescs))
	for _, d := range metricDescs {
		out = append(out, &runtimeapi.MetricDescriptor{Name: d.name, Help: d.help,
			LabelKeys: append(slices.Clip(metricLabels), d.extra...)})
	}
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: out}, nil
}

// metricSink collects the metrics of one pod or container: every metric carries its labels and time.
type metricSink struct {
	labels []string
	at     int64
	out    []*runtimeapi.Metric
}

func (m *metricSink) add(d *metricDesc, v uint64, extra ...string) {
	labels := m.labels
	if len(extra) > 0 {
		labels = append(slices.Clip(m.labels), extra...)
	}
	m.out = append(m.out, &runtimeapi.Metric{Name: d.name, Timestamp: m.at, MetricType: d.kind, LabelValues: labels,
		Value: &runtimeapi.UInt64Value{Value: v}})
}
