package cri

import (
	"context"
	"fmt"
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

// UpdateRuntimeConfig records the node's pod CIDR that the kubelet hands down and, when it changed, gives it to
// PodCIDRChanged (the CNI conf template). A failed hook keeps the old CIDR, so that the kubelet's retry runs it again.
func (s *RuntimeServer) UpdateRuntimeConfig(ctx context.Context, r *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	var cidrs []string
	for _, c := range splitCIDRs(cidr) {
		p, err := parsePrefix(c)
		if err != nil {
			return nil, errdefs.InvalidArgument("runtime_config.network_config.pod_cidr", "%q: %v", c, err)
		}
		cidrs = append(cidrs, p.String())
	}
	s.cidrMu.Lock() // one change at a time: a slow write must not land after a newer one
	defer s.cidrMu.Unlock()
	s.mu.Lock()
	changed := s.podCIDR != cidr
	s.mu.Unlock()
	if !changed {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	if s.opts.PodCIDRChanged != nil {
		if err := s.opts.PodCIDRChanged(ctx, cidrs); err != nil {
			return nil, fmt.Errorf("pod CIDR %s: %w", cidr, err)
		}
	}
	s.mu.Lock()
	s.podCIDR = cidr
	s.mu.Unlock()
	Logger(ctx).Info("pod CIDR updated", "podCIDR", cidr)
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
