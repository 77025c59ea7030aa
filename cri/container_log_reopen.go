package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// ReopenContainerLog makes the container's monitor reopen the log file after the kubelet rotated it. A container
// that is not running is refused, so no new log file appears for it (the CRI's rule).
func (s *RuntimeServer) ReopenContainerLog(ctx context.Context, r *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	found, ok := s.containers.Find(id)
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	unlock, err := s.ctrLocks.Lock(ctx, found.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, ok := s.containers.Get(found.ID)
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	if rec.State != ctrRunning {
		return nil, errdefs.FailedPrecondition("container %s is %s, not running", rec.ID, rec.State)
	}
	mon, err := s.monitorOf(rec.PodID)
	if err != nil {
		return nil, fmt.Errorf("reopen log of container %s: %w", rec.ID, err)
	}
	if err := mon.ReopenLog(ctx, rec.ID); err != nil {
		return nil, fmt.Errorf("reopen log of container %s: %w", rec.ID, err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
