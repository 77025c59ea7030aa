package cri

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// StartContainer starts a created container in its monitor.
func (s *RuntimeServer) StartContainer(ctx context.Context, r *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	if err := s.nriStartContainer(ctx, id); err != nil { // before the lock: plugins' callbacks take it
		return nil, err
	}
	unlock, err := s.ctrLocks.Lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, ok := s.containers.Get(id)
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	if rec.State != ctrCreated {
		return nil, errdefs.FailedPrecondition("container %s is %s, not created", id, rec.State)
	}
	mon, err := s.monitorOf(rec.PodID)
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	if err := mon.Start(ctx, id); err != nil {
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	now := time.Now().UnixNano()
	// The process may already have exited and been recorded (onExit): keep that state, only note the start.
	if _, err := s.containers.Update(id, func(c *containerRecord) error {
		if c.StartedAt == 0 {
			c.StartedAt = now
		}
		if c.State == ctrCreated {
			return c.transition(ctrRunning)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	s.opts.Metrics.containerStarted(rec.CreatedAt)
	s.emitContainerEvent(id, rec.PodID, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	s.nriStarted(ctx, id)
	return &runtimeapi.StartContainerResponse{}, nil
}
