package sandbox

import (
	"context"
	"net/netip"
	"os"
)

// Monitors starts and finds pod monitors. oci/monitor provides them: the daemon wraps monitor.Start and
// monitor.Connect in a small adapter; tests use a fake.
type Monitors interface {
	// Start starts the pod's monitor and returns once it serves. On error nothing of it may be left running.
	Start(ctx context.Context, o MonitorOptions) (Monitor, error)
	// Connect reaches the running monitor of a pod dir (after a berthd restart); an error means it is gone.
	Connect(dir string) (Monitor, error)
}

// Monitor is what sandbox needs of a running pod monitor.
type Monitor interface {
	PausePid() int // the pod's PID-namespace init, 0 when it has none; for display: the pid may be reused
	// PauseNamespace opens the pause process's namespace of kind ("pid", "user", "net", "ipc", "uts"), checked to
	// be the pause's own; a pause that has exited is an error wrapping errdefs.ErrFailedPrecondition.
	PauseNamespace(kind string) (*os.File, error)
	// CheckPause is nil without a pause process or while it runs, else an error wrapping ErrFailedPrecondition.
	CheckPause() error
	Shutdown(ctx context.Context) error // the monitor (and its pause process) exits
	Close() error                       // releases what the handle holds; the monitor is not touched
}

// MonitorOptions tell a monitor where it lives.
type MonitorOptions struct {
	PodID string
	Dir   string // the pod runtime dir
	// CgroupPath is the pod cgroup: a cgroupfs path, or a slice with Systemd. The monitor (and its pause
	// process) must live in a leaf of the pod's own below it, <CgroupPath>/berth-monitor-<PodID> with
	// cgroupfs and berth-monitor-<PodID>.scope with systemd: sandbox removes that leaf, killing what is left.
	CgroupPath  string
	Systemd     bool
	NeedPause   bool // the pod shares a PID namespace: start the pause process as its PID 1
	OOMScoreAdj int  // for the monitor and pause processes, already clamped to the configured floor
	// UserNS, for a pod with its own user namespace, has the pause process (NeedPause is set) started in a new user
	// namespace with these mappings, which owns its PID namespace and the new namespaces of Unshare ("net", "ipc",
	// "uts") made with it; sandbox pins them from the pause process.
	UserNS  *UserNamespace
	Unshare []string
	// Handler is the pod's RuntimeClass handler (Config.RuntimeHandler).
	Handler string
}

// Network connects pods to the network (CNI, issue 5). Without one a pod only has loopback.
type Network interface {
	// Setup attaches the pod's network namespace. Before it is called, the pod dir records that it was,
	// so a failed or interrupted setup is torn down all the same.
	Setup(ctx context.Context, pod *Pod) (*NetworkStatus, error)
	// Teardown detaches it; it must succeed on a pod whose Setup failed halfway or never finished.
	Teardown(ctx context.Context, pod *Pod) error
}

// NetworkStatus is what a network setup reports.
type NetworkStatus struct {
	IPs []netip.Addr // the pod's addresses, the primary one first
}
