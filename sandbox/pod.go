package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthcri/berth/internal/atomicfile"
)

// Files of the pod runtime dir <state>/pods/<id>/ that sandbox owns (the monitor owns monitor.*, pause*
// and containers/).
const (
	recordFile      = "pod.json"          // podRecord, written before anything else is made
	nsDir           = "ns"                // net, ipc, uts: pinned namespaces
	hostnameFile    = "hostname"          //
	hostsFile       = "hosts"             // bind-mounted into containers
	resolvFile      = "resolv.conf"       //
	shmDir          = "shm"               // tmpfs for /dev/shm
	cgroupOwnedFile = "cgroup.owned"      // present when berth made /berth/<id>, see createPodCgroup
	networkFile     = "network.attempted" // present from before Network.Setup until Teardown succeeded
	readyFile       = "ready"             // written last: creation finished
)

const recordVersion = 1

// podRecord is pod.json: what Remove and Recover need to know about a pod after a restart.
type podRecord struct {
	Version int    `json:"version"`
	Config  Config `json:"config"`
	Cgroup  string `json:"cgroup"`  // pod cgroup, see podCgroup
	Systemd bool   `json:"systemd"` // cgroup driver the pod was made with
}

// Pod is a pod's runtime state. It does not change after Create or Recover returns it; Manager calls for
// the same pod must not run concurrently (cri/ serialises them per pod).
type Pod struct {
	cfg     Config
	dir     string
	cgroup  string
	systemd bool
	monitor Monitor
	network *NetworkStatus

	// networkDone is closed when the network setup Create started has ended, with networkErr set on failure;
	// nil when none was started.
	networkDone chan struct{}
	networkErr  error
}

func (p *Pod) ID() string { return p.cfg.ID }

// Config returns the pod's config. Its slices and map are shared: do not modify them.
func (p *Pod) Config() Config { return p.cfg }

// Dir is the pod runtime dir <state>/pods/<id>.
func (p *Pod) Dir() string { return p.dir }

// Monitor is the pod's monitor; nil after Recover when it could not be reached.
func (p *Pod) Monitor() Monitor { return p.monitor }

// Network is what the network setup reported; nil without a network and after Recover.
func (p *Pod) Network() *NetworkStatus { return p.network }

// NetNSPath is the pinned network namespace, "" with host network.
func (p *Pod) NetNSPath() string { return p.nsPath(nsNet) }

// IPCNSPath is the pinned IPC namespace, "" with host IPC.
func (p *Pod) IPCNSPath() string { return p.nsPath(nsIPC) }

// UTSNSPath is the pinned UTS namespace, "" with host network (the UTS namespace follows the network's).
func (p *Pod) UTSNSPath() string { return p.nsPath(nsUTS) }

// PIDNSPath is the PID namespace of the pod's pause process, pinned, "" unless the pod shares one (PID mode POD).
// Pinned rather than /proc/<pause pid>/ns/pid: once the pause has exited its pid may be another process's, whose
// namespace a container would join; the pinned namespace of a dead pause takes no new process.
func (p *Pod) PIDNSPath() string {
	if p.cfg.Namespaces.PID != NamespacePod {
		return ""
	}
	return p.path(filepath.Join(nsDir, string(nsPID)))
}

// CheckPause is nil unless the pod's pause process has exited (an error wrapping errdefs.ErrFailedPrecondition):
// the pod's PID namespace, or the user namespace it owned, is gone, and the pod cannot take new containers.
func (p *Pod) CheckPause() error {
	if p.monitor == nil {
		return nil
	}
	return p.monitor.CheckPause()
}

func (p *Pod) HostnamePath() string { return p.path(hostnameFile) }
func (p *Pod) HostsPath() string    { return p.path(hostsFile) }
func (p *Pod) ResolvPath() string   { return p.path(resolvFile) }

// ShmPath is the tmpfs to mount on /dev/shm, "" with host IPC (containers then use the host's /dev/shm).
func (p *Pod) ShmPath() string {
	if p.cfg.Namespaces.IPC == NamespaceNode {
		return ""
	}
	return p.path(shmDir)
}

// CgroupParent is the pod cgroup: a cgroupfs path, or a slice name with the systemd driver.
func (p *Pod) CgroupParent() string { return p.cgroup }

// Systemd says whether the pod's cgroups are systemd units.
func (p *Pod) Systemd() bool { return p.systemd }

func (p *Pod) monitorCgroup() string {
	return childCgroup(p.systemd, p.cgroup, monitorScopePrefix, p.cfg.ID)
}

func (p *Pod) path(name string) string { return filepath.Join(p.dir, name) }

func (p *Pod) nsPaths() map[nsKind]string {
	paths := make(map[nsKind]string, len(nsKinds))
	for _, k := range nsKinds {
		if p.cfg.ownsNamespace(k) {
			paths[k] = p.path(filepath.Join(nsDir, string(k)))
		}
	}
	return paths
}

func (p *Pod) nsPath(k nsKind) string { return p.nsPaths()[k] }

func (p *Pod) writeRecord() error {
	b, err := json.Marshal(podRecord{Version: recordVersion, Config: p.cfg, Cgroup: p.cgroup, Systemd: p.systemd})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p.path(recordFile), b, 0o600)
}

// loadPod reads a pod dir's record.
func loadPod(dir string) (*Pod, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var r podRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", recordFile, err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", recordFile, r.Version, recordVersion)
	}
	return &Pod{cfg: r.Config, dir: dir, cgroup: r.Cgroup, systemd: r.Systemd}, nil
}
