// Package cri serves the Container Runtime Interface: validation, CRI ⇄ internal mapping, the interceptor and
// (later) streaming. It holds no runtime logic of its own.
package cri

import (
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeOptions is what the runtime service needs from the daemon.
type RuntimeOptions struct {
	// CgroupDriver is the resolved driver in use: "cgroupfs" or "systemd".
	CgroupDriver string
	// NetworkStatus returns nil when the pod network is ready, else an error saying exactly what is missing.
	NetworkStatus func() error
	// Config is the effective configuration, shown by a verbose Status.
	Config any
}

// RuntimeServer implements the CRI RuntimeService. RPCs that are not built yet answer Unimplemented.
type RuntimeServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	opts RuntimeOptions

	mu      sync.Mutex
	podCIDR string // from UpdateRuntimeConfig; kept for the network stage
}

func NewRuntimeServer(opts RuntimeOptions) *RuntimeServer {
	return &RuntimeServer{opts: opts}
}
