package main

import (
	"context"
	"syscall"

	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/sandbox"
)

// monitors starts and finds pod monitors for sandbox/: each is a berth-monitor process, the executable
// installed beside berthd.
type monitors struct{ runcRoot string }

func (m monitors) Start(ctx context.Context, o sandbox.MonitorOptions) (sandbox.Monitor, error) {
	bin, err := monitor.DefaultBinary()
	if err != nil {
		return nil, err
	}
	c, err := monitor.Start(ctx, monitor.StartOptions{PodID: o.PodID, Dir: o.Dir, RuncRoot: m.runcRoot,
		CgroupPath: o.CgroupPath, Systemd: o.Systemd, NeedPause: o.NeedPause, PauseUserNS: pauseUserNS(o), Binary: bin})
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
