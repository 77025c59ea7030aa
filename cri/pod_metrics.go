package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/sandbox"
)

// ListPodSandboxMetrics reports the metrics of every ready pod (metric_descriptors.go): the pod cgroup's and its
// network's at pod level, with an empty container label as cAdvisor does, and each created or running
// container's. A pod or container whose counters cannot be read is reported without them.
func (s *RuntimeServer) ListPodSandboxMetrics(ctx context.Context, r *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	var out []*runtimeapi.PodSandboxMetrics
	for _, rec := range s.pods.List() {
		if rec.State == podReady {
			out = append(out, s.podMetrics(ctx, rec))
		}
	}
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

func (s *RuntimeServer) StreamPodSandboxMetrics(r *runtimeapi.StreamPodSandboxMetricsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxMetricsServer) error {
	for _, rec := range s.pods.List() {
		if rec.State != podReady {
			continue
		}
		m := s.podMetrics(stream.Context(), rec)
		if err := stream.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: []*runtimeapi.PodSandboxMetrics{m}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *RuntimeServer) podMetrics(ctx context.Context, rec podRecord) *runtimeapi.PodSandboxMetrics {
	md := rec.Config.GetMetadata()
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: rec.ID}
	sink := &metricSink{labels: []string{md.GetName(), md.GetNamespace(), "", rec.ID, ""}, at: time.Now().UnixNano()}
	if pod := s.sandboxPod(rec.ID); pod != nil {
		if st, err := pod.CgroupStats(); err != nil {
			Logger(ctx).Debug("pod metrics: no cgroup counters", "pod", rec.ID, "err", err)
		} else {
			cgroupMetrics(sink, st)
		}
		if ifs, err := pod.NetworkStats(); err != nil {
			Logger(ctx).Debug("pod metrics: no network counters", "pod", rec.ID, "err", err)
		} else {
			networkMetrics(sink, ifs)
		}
	}
	pm.Metrics = sink.out
	for _, c := range s.podContainers(rec.ID) {
		if c.State == ctrCreated || c.State == ctrRunning {
			pm.ContainerMetrics = append(pm.ContainerMetrics, s.containerMetrics(ctx, md, c))
		}
	}
	return pm
}

func (s *RuntimeServer) containerMetrics(ctx context.Context, pod *runtimeapi.PodSandboxMetadata, rec containerRecord) *runtimeapi.ContainerMetrics {
	now := time.Now()
	sink := &metricSink{labels: []string{pod.GetName(), pod.GetNamespace(), rec.Config.GetMetadata().GetName(), rec.ID, rec.ImageName},
		at: now.UnixNano()}
	sink.add(mLastSeen, uint64(now.Unix()))
	started := rec.StartedAt
	if started == 0 {
		started = rec.CreatedAt
	}
	sink.add(mStartTime, uint64(started/int64(time.Second)))
	if c, err := s.opts.Containers.Load(rec.ID); err != nil {
		Logger(ctx).Debug("container metrics: not loaded", "container", rec.ID, "err", err)
	} else if st, err := c.Stats(); err != nil {
		Logger(ctx).Debug("container metrics: no cgroup counters", "container", rec.ID, "err", err)
	} else {
		cgroupMetrics(sink, st)
		specMetrics(sink, st.Limits)
		if pids, err := c.Processes(); err == nil {
			fds, sockets := countFDs(pids)
			sink.add(mFileDescriptors, fds)
			sink.add(mSockets, sockets)
		}
	}
	dir := s.layerDir(rec.ID)
	if u, err := s.layers.get(dir, now); err != nil {
		Logger(ctx).Debug("container metrics: writable layer", "container", rec.ID, "err", err)
	} else if err := fsMetrics(sink, dir, u); err != nil {
		Logger(ctx).Debug("container metrics: filesystem", "container", rec.ID, "err", err)
	}
	return &runtimeapi.ContainerMetrics{ContainerId: rec.ID, Metrics: sink.out}
}

// seconds truncates nanoseconds to whole seconds: the CRI carries integers.
func seconds(ns uint64) uint64 { return ns / uint64(time.Second) }

func cgroupMetrics(m *metricSink, st *ctr.Stats) {
	cpu := st.CPU
	m.add(mCPUUsage, seconds(cpu.UsageNanos))
	m.add(mCPUUser, seconds(cpu.UserNanos))
	m.add(mCPUSystem, seconds(cpu.SystemNanos))
	m.add(mCFSPeriods, cpu.Periods)
	m.add(mCFSThrottled, cpu.ThrottledPeriods)
	m.add(mCFSThrottledTime, seconds(cpu.ThrottledNanos))
	pressureMetrics(m, cpu.PSI, mCPUWaiting, mCPUStalled)

	mem := st.Memory
	m.add(mMemoryCache, mem.Cache)
	m.add(mMemoryRSS, mem.RSS)
	m.add(mMemoryKernel, mem.Kernel)
	m.add(mMemoryMapped, mem.MappedFile)
	m.add(mMemorySwap, mem.Swap)
	m.add(mMemoryFailcnt, mem.Failcnt)
	m.add(mMemoryUsage, mem.Usage)
	m.add(mMemoryMaxUsage, mem.MaxUsage)
	m.add(mMemoryWorkingSet, mem.WorkingSet)
	// The counters are hierarchical: the container with what it forked into sub-cgroups.
	m.add(mMemoryFailures, mem.PageFaults, "pgfault", "hierarchy")
	m.add(mMemoryFailures, mem.MajorPageFaults, "pgmajfault", "hierarchy")
	m.add(mOOMEvents, mem.OOMKills)
	pressureMetrics(m, mem.PSI, mMemoryWaiting, mMemoryStalled)

	m.add(mProcesses, st.Pids.Processes)
	m.add(mThreads, st.Pids.Current)
	m.add(mThreadsMax, st.Pids.Limit)

	for _, d := range st.IO.Devices {
		name := blockDevice(d.Major, d.Minor)
		major, minor := strconv.FormatUint(d.Major, 10), strconv.FormatUint(d.Minor, 10)
		m.add(mFsReadBytes, d.ReadBytes, name)
		m.add(mFsReads, d.Reads, name)
		m.add(mFsWriteBytes, d.WriteBytes, name)
		m.add(mFsWrites, d.Writes, name)
		m.add(mBlkioUsage, d.ReadBytes, name, major, minor, "Read")
		m.add(mBlkioUsage, d.WriteBytes, name, major, minor, "Write")
	}
	pressureMetrics(m, st.IO.PSI, mIOWaiting, mIOStalled)
}

// pressureMetrics reports PSI (cgroup v2): "some" task waiting, "full" all stalled; totals are microseconds.
func pressureMetrics(m *metricSink, p *ctr.PSI, waiting, stalled *metricDesc) {
	if p == nil {
		return
	}
	m.add(waiting, p.Some.Total/1e6)
	m.add(stalled, p.Full.Total/1e6)
}

// specMetrics report the limits the container runs with, the kernel's defaults where none is set.
func specMetrics(m *metricSink, l ctr.Limits) {
	period, shares := l.CPUPeriod, l.CPUShares
	if period == 0 {
		period = 100000
	}
	if shares == 0 {
		shares = 1024
	}
	m.add(mSpecCPUPeriod, period)
	m.add(mSpecCPUShares, shares)
	if l.CPUQuota > 0 {
		m.add(mSpecCPUQuota, uint64(l.CPUQuota))
	}
	m.add(mSpecMemoryLimit, uint64(max(l.Memory, 0)))
	m.add(mSpecMemorySwapMax, uint64(max(l.MemorySwap, 0)))
}

// networkMetrics reports the pod's interfaces but loopback. A pod without any other interface (no pod network)
// reports its loopback, so that its network series exist.
func networkMetrics(m *metricSink, ifs []sandbox.InterfaceStats) {
	report := slices.DeleteFunc(slices.Clone(ifs), func(i sandbox.InterfaceStats) bool { return i.Name == "lo" })
	if len(report) == 0 {
		report = ifs
	}
	for _, i := range report {
		m.add(mNetRxBytes, i.RxBytes, i.Name)
		m.add(mNetRxPackets, i.RxPackets, i.Name)
		m.add(mNetRxDropped, i.RxDropped, i.Name)
		m.add(mNetRxErrors, i.RxErrors, i.Name)
		m.add(mNetTxBytes, i.TxBytes, i.Name)
		m.add(mNetTxPackets, i.TxPackets, i.Name)
		m.add(mNetTxDropped, i.TxDropped, i.Name)
		m.add(mNetTxErrors, i.TxErrors, i.Name)
	}
}

// fsMetrics reports the writable layer's usage against the filesystem that holds it.
func fsMetrics(m *metricSink, dir string, u diskUsage) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	dev := blockDevice(uint64(unix.Major(st.Dev)), uint64(unix.Minor(st.Dev)))
	m.add(mFsUsage, u.bytes, dev)
	m.add(mFsLimit, fs.Blocks*uint64(fs.Bsize), dev)
	m.add(mFsInodesTotal, fs.Files, dev)
	m.add(mFsInodesFree, fs.Ffree, dev)
	return nil
}

// countFDs counts the open files of the processes, and among them the sockets.
func countFDs(pids []int) (fds, sockets uint64) {
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // exited meanwhile
		}
		fds += uint64(len(ents))
		for _, e := range ents {
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
				sockets++
			}
		}
	}
	return fds, sockets
}

var blockDevices sync.Map // "major:minor" → device name

// blockDevice names a block device "/dev/<name>" as cAdvisor does; devices without one (overlay, tmpfs) keep
// "major:minor".
func blockDevice(major, minor uint64) string {
	key := fmt.Sprintf("%d:%d", major, minor)
	if name, ok := blockDevices.Load(key); ok {
		return name.(string)
	}
	name := key
	if target, err := os.Readlink("/sys/dev/block/" + key); err == nil {
		name = "/dev/" + filepath.Base(target)
	}
	blockDevices.Store(key, name)
	return name
}
