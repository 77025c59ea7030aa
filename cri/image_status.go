package cri

import (
	"context"
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/errdefs"
)

// ImageStatus returns the image, or a response without one when it is not present (as the CRI asks). With
// verbose, info["info"] holds the image config and layers as JSON.
func (s *ImageServer) ImageStatus(ctx context.Context, r *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref, err := imageRef(r.GetImage())
	if err != nil {
		return nil, err
	}
	img, err := s.images.Status(ref)
	switch {
	case errdefs.IsNotFound(err):
		return &runtimeapi.ImageStatusResponse{}, nil
	case err != nil:
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRIImage(img)}
	if r.GetVerbose() {
		b, err := json.Marshal(verboseImage{ID: img.ID, ImageSpec: img.Config, Layers: img.Layers,
			LowerDirs: s.images.LowerDirs(img)})
		if err != nil {
			return nil, fmt.Errorf("encode image %s: %w", img.ID, err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

type verboseImage struct {
	ID        string        `json:"id"`
	ImageSpec ocispec.Image `json:"imageSpec"`
	Layers    []image.Layer `json:"layers"`
	// LowerDirs are the unpacked layer dirs, top-most first.
	LowerDirs []string `json:"lowerDirs"`
}
