package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// RemoveImage removes the image and all its tags. Removing an absent image succeeds (the CRI asks for
// idempotence). An image that containers use disappears from List and Status at once; its layers are freed
// when the last of those containers is removed.
func (s *ImageServer) RemoveImage(ctx context.Context, r *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref, err := imageRef(r.GetImage())
	if err != nil {
		return nil, err
	}
	if err := s.images.Remove(ref); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}
