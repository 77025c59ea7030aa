package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// ListImages lists the images; a filter naming an image (by id, tag or digest) narrows the list to it.
func (s *ImageServer) ListImages(ctx context.Context, r *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	images, err := s.list(r.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListImagesResponse{Images: images}, nil
}

func (s *ImageServer) list(f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if ref := f.GetImage().GetImage(); ref != "" {
		img, err := s.images.Status(ref)
		switch {
		case errdefs.IsNotFound(err):
			return nil, nil
		case err != nil:
			return nil, err
		}
		return []*runtimeapi.Image{toCRIImage(img)}, nil
	}
	var out []*runtimeapi.Image
	for _, img := range s.images.List() {
		out = append(out, toCRIImage(img))
	}
	return out, nil
}
