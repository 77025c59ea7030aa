package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *RuntimeServer) Status(ctx context.Context, r *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	networkReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if s.opts.NetworkStatus != nil {
		if err := s.opts.NetworkStatus(); err != nil {
			networkReady.Status = false
			networkReady.Reason = "NetworkPluginNotReady"
			networkReady.Message = fmt.Sprintf("network plugin not ready: %v", err)
		}
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{runtimeReady, networkReady}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{
			{Name: "", Features: s.handlerFeatures()},
			{Name: "runc", Features: s.handlerFeatures()},
		},
		// ResolveUser (oci/user.go) implements SupplementalGroupsPolicy Merge and Strict, and ContainerStatus.user.
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if r.GetVerbose() {
		info := map[string]string{}
		if s.opts.Config != nil {
			b, err := json.Marshal(s.opts.Config)
			if err != nil {
				return nil, fmt.Errorf("encode config: %w", err)
			}
			info["config"] = string(b)
		}
		s.mu.Lock()
		info["podCIDR"] = s.podCIDR
		s.mu.Unlock()
		resp.Info = info
	}
	return resp, nil
}

// handlerFeatures are the features of berth's one handler (libcontainer), served as "" and "runc".
func (s *RuntimeServer) handlerFeatures() *runtimeapi.RuntimeHandlerFeatures {
	return &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: hasMountSetattr(), UserNamespaces: s.userNamespaces() == nil}
}

// hasMountSetattr says whether the kernel has mount_setattr(2) (Linux 5.12), which recursive read-only mounts need.
var hasMountSetattr = sync.OnceValue(func() bool {
	err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
})
