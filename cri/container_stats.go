package cri

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// Container stats come straight from the container's cgroup (oci/ctr); no monitor or helper is involved.
// Created containers have a cgroup (their init waits in it), so they report real, near-zero counters. Exited
// containers report their attributes and writable layer only, as containerd does: the kubelet drops them.

func (s *RuntimeServer) ContainerStats(ctx context.Context, r *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	rec, ok := s.containers.Find(id)
	if !ok || rec.State == ctrCreating {
		return nil, errdefs.NotFound("container", id)
	}
	return &runtimeapi.ContainerStatsResponse{Stats: s.containerStats(ctx, rec)}, nil
}

func (s *RuntimeServer) ListContainerStats(ctx context.Context, r *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	var out []*runtimeapi.ContainerStats
	for _, rec := range s.statsContainers(r.GetFilter()) {
		out = append(out, s.containerStats(ctx, rec))
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

// statsBatch is how many container stats one stream message carries, far below gRPC's message size limit.
const statsBatch = 64

func (s *RuntimeServer) StreamContainerStats(r *runtimeapi.StreamContainerStatsRequest, stream runtimeapi.RuntimeService_StreamContainerStatsServer) error {
	recs := s.statsContainers(r.GetFilter())
	for len(recs) > 0 {
		n := min(len(recs), statsBatch)
		batch := make([]*runtimeapi.ContainerStats, 0, n)
		for _, rec := range recs[:n] {
			batch = append(batch, s.containerStats(stream.Context(), rec))
		}
		if err := stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: batch}); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// statsContainers lists the containers a stats filter selects; ids match by prefix, as in ListContainers.
func (s *RuntimeServer) statsContainers(f *runtimeapi.ContainerStatsFilter) []containerRecord {
	var out []containerRecord
	for _, rec := range s.containers.List() {
		if rec.State != ctrCreating && matchStatsFilter(rec, f) {
			out = append(out, rec)
		}
	}
	return out
}

func matchStatsFilter(rec containerRecord, f *runtimeapi.ContainerStatsFilter) bool {
	return strings.HasPrefix(rec.ID, f.GetId()) && strings.HasPrefix(rec.PodID, f.GetPodSandboxId()) &&
		matchLabels(rec.Config.GetLabels(), f.GetLabelSelector())
}

func (s *RuntimeServer) containerStats(ctx context.Context, rec containerRecord) *runtimeapi.ContainerStats {
	cs := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: rec.ID, Metadata: rec.Config.GetMetadata(),
			Labels: rec.Config.GetLabels(), Annotations: rec.Config.GetAnnotations()},
		WritableLayer: s.layerUsage(ctx, rec.ID),
	}
	if rec.State == ctrExited {
		return cs
	}
	st, err := s.readContainerCgroup(rec.ID)
	if err != nil {
		Logger(ctx).Debug("container stats: no cgroup counters", "container", rec.ID, "err", err)
		// No cgroup (yet, or any more): zeros with a time, as the kubelet needs timestamps.
		now := time.Now().UnixNano()
		cs.Cpu = &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{},
			UsageNanoCores: &runtimeapi.UInt64Value{}}
		cs.Memory = &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{},
			UsageBytes: &runtimeapi.UInt64Value{}, RssBytes: &runtimeapi.UInt64Value{},
			PageFaults: &runtimeapi.UInt64Value{}, MajorPageFaults: &runtimeapi.UInt64Value{}}
		return cs
	}
	cs.Cpu = s.cpuUsage(rec.ID, st)
	cs.Memory = memoryUsage(st)
	cs.Swap = swapUsage(st)
	cs.Io = ioUsage(st)
	return cs
}

func (s *RuntimeServer) readContainerCgroup(id string) (*ctr.Stats, error) {
	c, err := s.opts.Containers.Load(id)
	if err != nil {
		return nil, err
	}
	return c.Stats()
}

// cpuUsage maps CPU counters; key names the cgroup for the rate (a container id, or "pod/<id>").
func (s *RuntimeServer) cpuUsage(key string, st *ctr.Stats) *runtimeapi.CpuUsage {
	u := &runtimeapi.CpuUsage{Timestamp: st.Timestamp.UnixNano(),
		UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: st.CPU.UsageNanos}, Psi: psiStats(st.CPU.PSI)}
	if rate, ok := s.cpu.observe(key, st.CPU.UsageNanos, st.Timestamp); ok {
		u.UsageNanoCores = &runtimeapi.UInt64Value{Value: rate}
	}
	return u
}

func memoryUsage(st *ctr.Stats) *runtimeapi.MemoryUsage {
	m := st.Memory
	u := &runtimeapi.MemoryUsage{
		Timestamp:       st.Timestamp.UnixNano(),
		WorkingSetBytes: &runtimeapi.UInt64Value{Value: m.WorkingSet},
		UsageBytes:      &runtimeapi.UInt64Value{Value: m.Usage},
		RssBytes:        &runtimeapi.UInt64Value{Value: m.RSS},
		PageFaults:      &runtimeapi.UInt64Value{Value: m.PageFaults},
		MajorPageFaults: &runtimeapi.UInt64Value{Value: m.MajorPageFaults},
		Psi:             psiStats(m.PSI),
	}
	// Only a limit bounds what is available, as cAdvisor reports it.
	if m.Limit != 0 {
		u.AvailableBytes = &runtimeapi.UInt64Value{Value: m.Limit - min(m.Limit, m.WorkingSet)}
	}
	return u
}

func swapUsage(st *ctr.Stats) *runtimeapi.SwapUsage {
	m := st.Memory
	u := &runtimeapi.SwapUsage{Timestamp: st.Timestamp.UnixNano(), SwapUsageBytes: &runtimeapi.UInt64Value{Value: m.Swap}}
	// Swap is bounded when memory and memory+swap both are; equal limits allow none.
	if m.Limit != 0 && m.MemSwapLimit != 0 {
		swapLimit := m.MemSwapLimit - min(m.MemSwapLimit, m.Limit)
		u.SwapAvailableBytes = &runtimeapi.UInt64Value{Value: swapLimit - min(swapLimit, m.Swap)}
	}
	return u
}

// ioUsage carries pressure only (the CRI has no I/O counters), so it exists on cgroup v2 alone.
func ioUsage(st *ctr.Stats) *runtimeapi.IoUsage {
	if st.IO.PSI == nil {
		return nil
	}
	return &runtimeapi.IoUsage{Timestamp: st.Timestamp.UnixNano(), Psi: psiStats(st.IO.PSI)}
}

func psiStats(p *ctr.PSI) *runtimeapi.PsiStats {
	if p == nil {
		return nil
	}
	data := func(d ctr.PSIData) *runtimeapi.PsiData {
		return &runtimeapi.PsiData{Total: d.Total, Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300}
	}
	return &runtimeapi.PsiStats{Full: data(p.Full), Some: data(p.Some)}
}

// layerUsage measures the container's overlay upper dir (stats_layer.go); nil when it cannot be measured.
func (s *RuntimeServer) layerUsage(ctx context.Context, id string) *runtimeapi.FilesystemUsage {
	u, err := s.layers.get(s.layerDir(id), time.Now())
	if err != nil {
		Logger(ctx).Debug("writable layer usage", "container", id, "err", err)
		return nil
	}
	return &runtimeapi.FilesystemUsage{
		Timestamp:  u.at.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: filepath.Join(s.opts.RootDir, "containers")},
		UsedBytes:  &runtimeapi.UInt64Value{Value: u.bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: u.inodes},
	}
}

// layerDir is the upper dir of the container's writable layer.
func (s *RuntimeServer) layerDir(id string) string {
	return filepath.Join(s.writableLayer(id), "upper")
}
