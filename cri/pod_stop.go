package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// StopPodSandbox kills every container of the pod and releases its network. It is idempotent and succeeds for an
// unknown pod.
func (s *RuntimeServer) StopPodSandbox(ctx context.Context, r *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	id := r.GetPodSandboxId()
	if id == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must be set")
	}
	if _, ok := s.pods.Get(id); !ok {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	unlock, err := s.podLocks.Lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.stopPod(ctx, id); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// stopPod stops the pod's containers and releases its network; the caller holds the pod's lock, so that no container
// is created meanwhile. Locks are waited for under ctx, the teardown runs on a cleanup context.
func (s *RuntimeServer) stopPod(ctx context.Context, id string) error {
	for _, c := range s.podContainers(id) {
		if err := s.stopContainer(ctx, c.ID, 0); err != nil {
			return fmt.Errorf("stop pod %s: %w", id, err)
		}
	}
	s.nriStopPod(ctx, id)
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if pod := s.sandboxPod(id); pod != nil {
		if err := pod.Stop(cctx); err != nil {
			return fmt.Errorf("stop pod %s: %w", id, err)
		}
	}
	rec, err := s.pods.Update(id, func(p *podRecord) error { return p.transition(podNotReady) })
	if err == nil {
		s.emitPodEvent(rec, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// RemovePodSandbox removes the pod, stopping it first; idempotent, and OK for an unknown pod. It holds the pod's lock
// from the first container's removal to the record's, so that a CreateContainer racing it either finishes first (and
// its container is removed here) or finds the pod gone.
func (s *RuntimeServer) RemovePodSandbox(ctx context.Context, r *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	id := r.GetPodSandboxId()
	if id == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must be set")
	}
	if _, ok := s.pods.Get(id); !ok {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	unlock, err := s.podLocks.Lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, ok := s.pods.Get(id)
	if !ok {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	for _, c := range s.podContainers(id) {
		if err := s.removeContainer(ctx, c.ID); err != nil {
			return nil, fmt.Errorf("remove pod %s: %w", id, err)
		}
	}
	s.nriStopPod(ctx, id) // unless StopPodSandbox told the plugins
	if err := s.undoPod(ctx, rec, s.sandboxPod(id), nil); err != nil {
		return nil, fmt.Errorf("remove pod %s: %w", id, err)
	}
	s.mu.Lock()
	delete(s.sandbox, id)
	s.mu.Unlock()
	s.podNames.release(podNameKey(rec.Config.GetMetadata()), id)
	s.nriRemovePod(ctx, rec)
	s.emitPodEvent(rec, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	Logger(ctx).Info("pod removed", "pod", id)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// podContainers lists the records of a pod's containers.
func (s *RuntimeServer) podContainers(podID string) []containerRecord {
	var out []containerRecord
	for _, c := range s.containers.List() {
		if c.PodID == podID {
			out = append(out, c)
		}
	}
	return out
}
