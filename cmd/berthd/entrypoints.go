package main

import (
	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/oci/runc"
)

// entrypoint runs the modes berthd re-executes itself in, before the daemon's flag handling:
//
//	berthd init       libcontainer's container init (oci/runc); never returns
//	berthd monitor …  a pod's monitor (oci/monitor)
//
// "berthd pause <dir>" never reaches Go: oci/pause's C constructor runs it before the runtime starts.
func entrypoint(args []string) (code int, ok bool) {
	if len(args) < 2 {
		return 0, false
	}
	switch args[1] {
	case "init":
		runc.Init()
	case monitor.Arg:
		return monitor.Main(args[2:]), true
	}
	return 0, false
}
