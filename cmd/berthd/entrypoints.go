package main

import "github.com/berthcri/berth/oci/runc"

// containerInit runs "berthd init", libcontainer's container init (oci/runc) for the processes ExecSync
// starts, before the daemon's flag handling; it never returns. Other arguments are the daemon's.
//
// Pods' monitors and pause processes are the berth-monitor executable (cmd/berth-monitor), not berthd.
func containerInit(args []string) {
	if len(args) > 1 && args[1] == "init" {
		runc.Init()
	}
}
