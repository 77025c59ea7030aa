package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/version"
)

// kubeletAPIVersion is the CRI "version" field every runtime reports; runtime_api_version names the API.
const kubeletAPIVersion = "0.1.0"

func (s *RuntimeServer) Version(ctx context.Context, r *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           kubeletAPIVersion,
		RuntimeName:       version.RuntimeName,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: "v1",
	}, nil
}
