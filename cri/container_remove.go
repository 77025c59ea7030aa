package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// RemoveContainer removes a container in any state, killing it first; idempotent, OK for an unknown container.
func (s *RuntimeServer) RemoveContainer(ctx context.Context, r *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	if err := s.removeContainer(ctx, id); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *RuntimeServer) removeContainer(ctx context.Context, id string) error {
	if err := s.stopContainer(ctx, id, 0); err != nil {
		return err
	}
	unlock, err := s.ctrLocks.Lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	rec, ok := s.containers.Get(id)
	if !ok {
		return nil
	}
	// The clean-up finishes even when the caller gives up: it must not leave half of the container behind.
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.forgetContainer(cctx, rec); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	s.ctrNames.release(containerNameKey(rec.PodID, rec.Config.GetMetadata()), id)
	s.emitContainerEvent(id, rec.PodID, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	s.nriRemoved(ctx, rec)
	Logger(ctx).Info("container removed", "container", id)
	return nil
}
