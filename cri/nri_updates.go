package cri

import (
	"context"

	nriapi "github.com/containerd/nri/pkg/adaptation"

	"github.com/berthcri/berth/internal/errdefs"
)

// What plugins ask of berth: the state a connecting plugin is synchronized with, and container updates and
// evictions, on their own or in reply to an event (nri.go).

// SynchronizeNRI gives a connecting plugin every pod and container in the records (internal/nri.Runtime). The
// adaptation calls it with creations held off (nriBlockSync).
func (s *RuntimeServer) SynchronizeNRI(ctx context.Context, cb nriapi.SyncCB) error {
	var pods []*nriapi.PodSandbox
	for _, rec := range s.pods.List() {
		if rec.State != podCreating {
			pods = append(pods, nriPod(rec, s.sandboxPod(rec.ID)))
		}
	}
	var ctrs []*nriapi.Container
	for _, rec := range s.containers.List() {
		if rec.State != ctrCreating {
			ctrs = append(ctrs, nriContainer(rec, s.loadSpec(rec)))
		}
	}
	updates, err := cb(ctx, pods, ctrs)
	s.nriApplyLater(ctx, updates, nil)
	return err
}

// UpdateContainersNRI applies the resource updates a plugin asks for on its own through berth's update path
// (internal/nri.Runtime) and returns those that failed.
func (s *RuntimeServer) UpdateContainersNRI(ctx context.Context, updates []*nriapi.ContainerUpdate) ([]*nriapi.ContainerUpdate, error) {
	var failed []*nriapi.ContainerUpdate
	for _, u := range updates {
		if err := s.nriApply(ctx, u); err != nil {
			s.log.Warn("NRI container update failed", "container", u.GetContainerId(), "err", err)
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
		}
	}
	return failed, nil
}

// nriApply applies one plugin update. A container being created is refused, not waited for: its creation holds
// its lock while it waits for the plugins.
func (s *RuntimeServer) nriApply(ctx context.Context, u *nriapi.ContainerUpdate) error {
	rec, ok := s.containers.Get(u.GetContainerId())
	switch {
	case !ok:
		return errdefs.NotFound("container", u.GetContainerId())
	case rec.State == ctrCreating:
		return errdefs.FailedPrecondition("container %s is being created", rec.ID)
	case u.GetLinux().GetResources() == nil:
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nriNotifyTimeout)
	defer cancel()
	return s.updateResources(ctx, rec.ID, criResources(u.GetLinux().GetResources()))
}

// nriApplyLater applies the updates and evictions plugins return with an event, after it: they concern other
// containers, whose locks the caller may not take.
func (s *RuntimeServer) nriApplyLater(ctx context.Context, updates []*nriapi.ContainerUpdate, evict []*nriapi.ContainerEviction) {
	if len(updates) == 0 && len(evict) == 0 {
		return
	}
	go func() {
		ctx, cancel := cleanupContext(ctx)
		defer cancel()
		if failed, _ := s.UpdateContainersNRI(ctx, updates); len(failed) > 0 {
			s.log.Warn("NRI plugins' container updates failed", "count", len(failed))
		}
		for _, e := range evict {
			s.log.Info("NRI plugin evicts container", "container", e.GetContainerId(), "reason", e.GetReason())
			if err := s.stopContainer(ctx, e.GetContainerId(), 0); err != nil {
				s.log.Warn("NRI eviction failed", "container", e.GetContainerId(), "err", err)
			}
		}
	}()
}
