package cri

import (
	"context"
	"net/netip"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// RuntimeConfig tells the kubelet which cgroup driver berth uses, so both build the same hierarchy.
func (s *RuntimeServer) RuntimeConfig(ctx context.Context, r *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.opts.CgroupDriver == "systemd" {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig records the node's pod CIDR that the kubelet hands down.
func (s *RuntimeServer) UpdateRuntimeConfig(ctx context.Context, r *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	for _, c := range splitCIDRs(cidr) {
		if _, err := parsePrefix(c); err != nil {
			return nil, errdefs.InvalidArgument("runtime_config.network_config.pod_cidr", "%q: %v", c, err)
		}
	}
	s.mu.Lock()
	changed := s.podCIDR != cidr
	s.podCIDR = cidr
	s.mu.Unlock()
	if changed {
		Logger(ctx).Info("pod CIDR updated", "podCIDR", cidr)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// splitCIDRs splits the kubelet's comma-separated (dual-stack) pod CIDR list.
func splitCIDRs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func parsePrefix(s string) (netip.Prefix, error) { return netip.ParsePrefix(strings.TrimSpace(s)) }
