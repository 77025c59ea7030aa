package monitor

import (
	"os"

	"github.com/berthcri/berth/oci/ctr"
)

// The monitor runs each libcontainer operation in a short-lived child process, "berth-monitor runc <op>"
// (oci/runc.Helper), as containerd's shim runs runc: libcontainer's code, the OCI spec's decoding and its JSON
// encoding of the container config would otherwise stay in every monitor's heap for the pod's life (~0.8 MiB
// measured per idle monitor) for work done once per container. The container's init, a child of the helper,
// is reparented to the monitor, a subreaper, when the helper exits; the monitor holds a pidfd of it, signals
// it and reaps it.

// runHelper runs one helper operation for container id, with files as its descriptors from
// ctr.HelperFirstFD on. The caller holds s.reaper.starting for reading: the helper is waited for by pid, not
// by the reaper.
func (s *server) runHelper(op, id string, files []*os.File, args ...string) (ctr.Result, error) {
	return s.helpers.Run(op, id, files, args...)
}
