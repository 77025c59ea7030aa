package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// Cgroup returns a manager of the pod cgroup, for reading its counters (oci/ctr.CgroupStats).
func (p *Pod) Cgroup() (cgroups.Manager, error) {
	if p.cgroup == "" {
		return nil, fmt.Errorf("pod %s has no cgroup", p.ID())
	}
	return newCgroupManager(p.systemd, p.cgroup)
}

// InterfaceStats are the cumulative counters of one network interface.
type InterfaceStats struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// NetworkStats reads the counters of every interface in the pod's network namespace, loopback included; nil
// with host network.
func (p *Pod) NetworkStats() ([]InterfaceStats, error) {
	path := p.NetNSPath()
	if path == "" {
		return nil, nil
	}
	var stats []InterfaceStats
	// /proc/thread-self/net follows the calling thread's network namespace (/proc/net is the process's).
	err := inNamespaces(map[nsKind]string{nsNet: path}, func() error {
		f, err := os.Open("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		defer f.Close()
		stats, err = parseNetDev(f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s: network stats: %w", p.ID(), err)
	}
	return stats, nil
}

// parseNetDev reads the format of /proc/net/dev: two header lines, then "name: 8 receive and 8 transmit counters".
func parseNetDev(r io.Reader) ([]InterfaceStats, error) {
	var out []InterfaceStats
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		if line <= 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) < 16 {
			return nil, fmt.Errorf("net/dev line %d: %q: want name: and 16 counters", line, sc.Text())
		}
		var v [16]uint64
		for i := range v {
			n, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("net/dev line %d: %w", line, err)
			}
			v[i] = n
		}
		out = append(out, InterfaceStats{Name: strings.TrimSpace(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("net/dev: %w", err)
	}
	return out, nil
}
