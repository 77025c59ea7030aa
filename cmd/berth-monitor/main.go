// Command berth-monitor is berth's per-pod monitor. berthd starts one for each pod and finds it beside its
// own executable; it is a separate, small executable so that every pod pays only for what a monitor runs
// (oci/monitor, oci/runc, oci/crilog, oci/pause), not for berthd's gRPC, image and CNI code.
//
//	berth-monitor serve -dir <pod dir> …   a pod's monitor (oci/monitor); berthd passes the flags
//	berth-monitor runc … <op>              one libcontainer operation, run by the monitor in a child process
//	berth-monitor init                     libcontainer's container init (oci/runc); never returns
//	berth-monitor pause <dir>              the pod's PID-namespace init: oci/pause's C constructor runs it
//	                                       before the Go runtime starts
package main

import (
	"fmt"
	"os"

	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/oci/pause"
	"github.com/berthcri/berth/oci/runc"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "init":
			runc.Init()
		case monitor.Arg:
			os.Exit(monitor.Main(os.Args[2:], pause.Command))
		case ctr.HelperArg:
			os.Exit(runc.Helper(os.Args[2:]))
		}
	}
	fmt.Fprintf(os.Stderr, "usage: %s %s -dir <pod dir> … (started by berthd)\n", monitor.BinaryName, monitor.Arg)
	os.Exit(2)
}
