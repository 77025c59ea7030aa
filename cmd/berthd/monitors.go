package main

import (
	"context"

	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/sandbox"
)

// monitors starts and finds pod monitors for sandbox/: the monitor is this binary re-executed.
type monitors struct{ runcRoot string }

func (m monitors) Start(ctx context.Context, o sandbox.MonitorOptions) (sandbox.Monitor, error) {
	c, err := monitor.Start(ctx, monitor.StartOptions{PodID: o.PodID, Dir: o.Dir, RuncRoot: m.runcRoot,
		CgroupPath: o.CgroupPath, Systemd: o.Systemd, NeedPause: o.NeedPause})
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
