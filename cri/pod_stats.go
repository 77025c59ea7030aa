package cri

import (
	"context"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/sandbox"
)

// Pod stats read the pod cgroup, which holds the pod's containers and its monitor (and pause process), and the
// interfaces of the pod's network namespace.

func (s *RuntimeServer) PodSandboxStats(ctx context.Context, r *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	id := r.GetPodSandboxId()
	if id == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must be set")
	}
	rec, ok := s.pods.Find(id)
	if !ok || rec.State == podCreating {
		return nil, errdefs.NotFound("pod sandbox", id)
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.podSandboxStats(ctx, rec)}, nil
}

func (s *RuntimeServer) ListPodSandboxStats(ctx context.Context, r *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	var out []*runtimeapi.PodSandboxStats
	for _, rec := range s.statsPods(r.GetFilter()) {
		out = append(out, s.podSandboxStats(ctx, rec))
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

func (s *RuntimeServer) StreamPodSandboxStats(r *runtimeapi.StreamPodSandboxStatsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxStatsServer) error {
	for _, rec := range s.statsPods(r.GetFilter()) {
		st := s.podSandboxStats(stream.Context(), rec)
		if err := stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: []*runtimeapi.PodSandboxStats{st}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *RuntimeServer) statsPods(f *runtimeapi.PodSandboxStatsFilter) []podRecord {
	var out []podRecord
	for _, rec := range s.pods.List() {
		if rec.State != podCreating && strings.HasPrefix(rec.ID, f.GetId()) && matchLabels(rec.Config.GetLabels(), f.GetLabelSelector()) {
			out = append(out, rec)
		}
	}
	return out
}

func (s *RuntimeServer) podSandboxStats(ctx context.Context, rec podRecord) *runtimeapi.PodSandboxStats {
	linux := &runtimeapi.LinuxPodSandboxStats{}
	if pod := s.sandboxPod(rec.ID); pod != nil {
		if st, err := pod.CgroupStats(); err != nil {
			Logger(ctx).Debug("pod stats: no cgroup counters", "pod", rec.ID, "err", err)
		} else {
			linux.Cpu = s.cpuUsage(podStatsKey(rec.ID), st)
			linux.Memory = memoryUsage(st)
			linux.Io = ioUsage(st)
			linux.Process = &runtimeapi.ProcessUsage{Timestamp: st.Timestamp.UnixNano(),
				ProcessCount: &runtimeapi.UInt64Value{Value: st.Pids.Processes}}
		}
		if ifs, err := pod.NetworkStats(); err != nil {
			Logger(ctx).Debug("pod stats: no network counters", "pod", rec.ID, "err", err)
		} else if ifs != nil { // nil: host network
			linux.Network = networkUsage(ifs, time.Now())
		}
	}
	for _, c := range s.podContainers(rec.ID) {
		if c.State != ctrCreating {
			linux.Containers = append(linux.Containers, s.containerStats(ctx, c))
		}
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: rec.ID, Metadata: rec.Config.GetMetadata(),
			Labels: rec.Config.GetLabels(), Annotations: rec.Config.GetAnnotations()},
		Linux: linux,
	}
}

// podStatsKey keeps a pod's CPU readings apart from its containers'.
func podStatsKey(id string) string { return "pod/" + id }

// defaultInterface is the interface CNI plugins create in the pod, the one the kubelet reports.
const defaultInterface = "eth0"

// networkUsage reports every interface but loopback; the default one is eth0, or else the first.
func networkUsage(ifs []sandbox.InterfaceStats, at time.Time) *runtimeapi.NetworkUsage {
	u := &runtimeapi.NetworkUsage{Timestamp: at.UnixNano()}
	for _, i := range ifs {
		if i.Name == "lo" {
			continue
		}
		iu := &runtimeapi.NetworkInterfaceUsage{Name: i.Name,
			RxBytes: &runtimeapi.UInt64Value{Value: i.RxBytes}, RxErrors: &runtimeapi.UInt64Value{Value: i.RxErrors},
			TxBytes: &runtimeapi.UInt64Value{Value: i.TxBytes}, TxErrors: &runtimeapi.UInt64Value{Value: i.TxErrors}}
		u.Interfaces = append(u.Interfaces, iu)
		if i.Name == defaultInterface || u.DefaultInterface == nil {
			u.DefaultInterface = iu
		}
	}
	return u
}
