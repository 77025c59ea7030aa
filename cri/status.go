package cri

import (
	"context"
	"encoding/json"
	"fmt"

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
			{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}},
		},
		Features: &runtimeapi.RuntimeFeatures{},
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
