package cni

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// podIPs returns the addresses an ADD gave the pod's own interfaces (not the host side of a veth, not the
// bridge), IPv4 first, each family in the result's order.
func podIPs(res types.Result) ([]netip.Addr, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	var ips []netip.Addr
	for _, ipc := range r.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(r.Interfaces) || r.Interfaces[i].Sandbox == "" {
				continue
			}
		}
		ip, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok || slices.Contains(ips, ip.Unmap()) {
			continue
		}
		ips = append(ips, ip.Unmap())
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int { return cmp.Compare(a.BitLen(), b.BitLen()) })
	return ips, nil
}
