package cri

import (
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamChunk is how many images go in one StreamImages message: far below the gRPC message size limit even
// with many tags per image.
const streamChunk = 500

// StreamImages sends what ListImages would return, in messages of at least one image each (none when there
// are no images), then ends the stream.
func (s *ImageServer) StreamImages(r *runtimeapi.StreamImagesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	images, err := s.list(r.GetFilter())
	if err != nil {
		return err
	}
	for start := 0; start < len(images); start += streamChunk {
		end := min(start+streamChunk, len(images))
		if err := stream.Send(&runtimeapi.StreamImagesResponse{Images: images[start:end]}); err != nil {
			return err
		}
	}
	return nil
}
