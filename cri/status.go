package cri

import (
	"context"
	"encoding/json"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/kernel"
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
		// "" and "runc", then each configured handler (runtime_handlers.go).
		RuntimeHandlers: s.runtimeHandlers(),
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
		b, err := json.Marshal(kernelInfo())
		if err != nil {
			return nil, fmt.Errorf("encode kernel features: %w", err)
		}
		info["kernel"] = string(b)
		if b, err = json.Marshal(s.appArmorInfo()); err != nil {
			return nil, fmt.Errorf("encode apparmor: %w", err)
		}
		info["apparmor"] = string(b)
		// The config shows cgroup_driver as written ("auto"); this is what it resolved to.
		info["cgroupDriver"] = s.opts.CgroupDriver
		s.mu.Lock()
		info["podCIDR"] = s.podCIDR
		s.mu.Unlock()
		resp.Info = info
	}
	return resp, nil
}

// kernelInfo is the kernel's release and, for each probed feature, why the kernel lacks it ("" when it has it), for
// an operator reading crictl info.
func kernelInfo() map[string]any {
	features := map[string]string{}
	for _, f := range kernel.Features() {
		features[f.Name] = ""
		if f.Err != nil {
			features[f.Name] = f.Err.Error()
		}
	}
	return map[string]any{"release": kernel.Release(), "features": features}
}
