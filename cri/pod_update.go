package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// UpdatePodSandboxResources is the kubelet's note that a pod's resources changed (in-place resize). The pod's
// cgroup is the kubelet's to size; berth relays the change to NRI plugins, as containerd and CRI-O do.
func (s *RuntimeServer) UpdatePodSandboxResources(ctx context.Context, r *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	id := r.GetPodSandboxId()
	if id == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must be set")
	}
	rec, ok := s.pods.Get(id)
	if !ok || rec.State == podCreating {
		return nil, errdefs.NotFound("pod sandbox", id)
	}
	if err := s.nriUpdatePod(ctx, rec, r.GetOverhead(), r.GetResources()); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
