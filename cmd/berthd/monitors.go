package main

import (
	"context"
	"syscall"

	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/sandbox"
)

// monitors starts and finds pod monitors for sandbox/: each is a berth-monitor process, the executable
// installed beside berthd. The monitor of a user-namespaced pod gets the userns group (usernsGID, 0 for none) as
// its one supplementary group: its pause process and runc's container init, the pod's root, which is no one on the
// host, traverse the shared state dirs with it (they drop it before the workload runs).
type monitors struct {
	runcRoot  string
	usernsGID int
	handlers  map[string]runtimeHandler // the configured RuntimeClass handlers (cri/ checked the pod's)
}

func (m monitors) Start(ctx context.Context, o sandbox.MonitorOptions) (sandbox.Monitor, error) {
	bin, err := monitor.DefaultBinary()
	if err != nil {
		return nil, err
	}
	var groups []uint32
	if o.UserNS != nil && m.usernsGID > 0 {
		groups = []uint32{uint32(m.usernsGID)}
	}
	so := monitor.StartOptions{PodID: o.PodID, Dir: o.Dir, RuncRoot: m.runcRoot,
		CgroupPath: o.CgroupPath, Systemd: o.Systemd, NeedPause: o.NeedPause, PauseUserNS: pauseUserNS(o), Binary: bin,
		Groups: groups}
	if h, ok := m.handlers[o.Handler]; ok {
		so.RuncRoot, so.Runtime = h.records, h.binary
	}
	c, err := monitor.Start(ctx, so)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (m monitors) Connect(dir string) (sandbox.Monitor, error) {
	c, err := monitor.Connect(dir)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// pauseUserNS is the user namespace a pod's pause process makes for it, if the pod has its own.
func pauseUserNS(o sandbox.MonitorOptions) monitor.UserNamespace {
	if o.UserNS == nil {
		return monitor.UserNamespace{}
	}
	conv := func(ms []sandbox.IDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, len(ms))
		for i, m := range ms {
			out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
		}
		return out
	}
	return monitor.UserNamespace{UIDs: conv(o.UserNS.UIDs), GIDs: conv(o.UserNS.GIDs), Unshare: o.Unshare}
}
