package cri

import (
	"context"
	"fmt"
	"maps"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/specgen"
)

// UpdateContainerResources changes a container's cgroup limits (in-place pod resize) and records them, so that
// ContainerStatus reports them. A created or running container's cgroup is changed first, by libcontainer in a helper
// (which restores the old limits when the kernel refuses the new ones); an exited container's record only.
func (s *RuntimeServer) UpdateContainerResources(ctx context.Context, r *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	id := r.GetContainerId()
	switch {
	case id == "":
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	case r.GetLinux() == nil:
		return nil, errdefs.InvalidArgument("linux", "must be set")
	}
	found, ok := s.containers.Find(id)
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	upd, err := s.nriUpdateContainer(ctx, found, r.GetLinux()) // plugins may adjust the update
	if err != nil {
		return nil, err
	}
	if err := s.updateResources(ctx, found.ID, upd); err != nil {
		return nil, err
	}
	s.nriUpdated(ctx, found.ID)
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// updateResources merges upd into a container's resources, applies them and records them: the update path of
// UpdateContainerResources and of NRI plugins' updates.
func (s *RuntimeServer) updateResources(ctx context.Context, id string, upd *runtimeapi.LinuxContainerResources) error {
	unlock, err := s.ctrLocks.Lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	rec, ok := s.containers.Get(id)
	if !ok || rec.State == ctrCreating {
		return errdefs.NotFound("container", id)
	}
	old := rec.Config.GetLinux().GetResources()
	merged := mergeResources(old, upd)
	res, err := specgen.Resources(resources(merged), s.opts.Host)
	if err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	applied := false
	if rec.State == ctrCreated || rec.State == ctrRunning {
		err := s.opts.Containers.Update(id, res)
		switch {
		case err == nil:
			applied = true
		case errdefs.IsFailedPrecondition(err) && s.exitedMeanwhile(id):
			// The process ended while we were updating: the record is all there is to change.
		default:
			return fmt.Errorf("update container %s: %w", id, err)
		}
	}
	if _, err := s.containers.Update(id, func(c *containerRecord) error {
		if c.Config.Linux == nil {
			c.Config.Linux = &runtimeapi.LinuxContainerConfig{}
		}
		c.Config.Linux.Resources = merged
		return nil
	}); err != nil {
		if applied {
			s.restoreResources(ctx, id, old)
		}
		return fmt.Errorf("update container %s: %w", id, err)
	}
	Logger(ctx).Info("container resources updated", "container", id, "applied", applied)
	return nil
}

func (s *RuntimeServer) exitedMeanwhile(id string) bool {
	s.onExit(id)
	rec, ok := s.containers.Get(id)
	return ok && rec.State == ctrExited
}

// restoreResources puts the recorded limits back after the new ones could not be recorded.
func (s *RuntimeServer) restoreResources(ctx context.Context, id string, old *runtimeapi.LinuxContainerResources) {
	res, err := specgen.Resources(resources(old), s.opts.Host)
	if err == nil {
		err = s.opts.Containers.Update(id, res)
	}
	if err != nil {
		Logger(ctx).Error("restore container resources", "container", id, "err", err)
	}
}

// mergeResources applies an update onto the current resources as containerd does: set fields replace the current
// ones, zero and empty fields keep them; hugepage limits replace those of the same page size and unified entries
// those of the same key. oom_score_adj is kept: it belongs to the process, which cannot change it any more.
func mergeResources(cur, upd *runtimeapi.LinuxContainerResources) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	if cur != nil {
		out = proto.Clone(cur).(*runtimeapi.LinuxContainerResources)
	}
	setInt := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&out.CpuPeriod, upd.GetCpuPeriod())
	setInt(&out.CpuQuota, upd.GetCpuQuota())
	setInt(&out.CpuShares, upd.GetCpuShares())
	setInt(&out.MemoryLimitInBytes, upd.GetMemoryLimitInBytes())
	setInt(&out.MemorySwapLimitInBytes, upd.GetMemorySwapLimitInBytes())
	if v := upd.GetCpusetCpus(); v != "" {
		out.CpusetCpus = v
	}
	if v := upd.GetCpusetMems(); v != "" {
		out.CpusetMems = v
	}
	for _, h := range upd.GetHugepageLimits() {
		replaced := false
		for i, o := range out.HugepageLimits {
			if o.GetPageSize() == h.GetPageSize() {
				out.HugepageLimits[i] = proto.Clone(h).(*runtimeapi.HugepageLimit)
				replaced = true
			}
		}
		if !replaced {
			out.HugepageLimits = append(out.HugepageLimits, proto.Clone(h).(*runtimeapi.HugepageLimit))
		}
	}
	if len(upd.GetUnified()) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, upd.GetUnified())
	}
	return out
}
