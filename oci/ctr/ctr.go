// Package ctr acts on berth's libcontainer containers from processes that do not link libcontainer:
// berthd and the pod monitors. It reads a container's state from libcontainer's state directory, signals its
// processes, reads its cgroup counters, and runs what needs libcontainer itself (create, start, exec, resource
// updates, destroy) in a short-lived helper process, "berth-monitor runc <op>" (oci/runc.Helper), as
// containerd runs the runc binary. berthd stays free of libcontainer's code and cgo: its executable, all of
// which is resident, is megabytes smaller.
package ctr

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// Runtime is libcontainer's state root and how to run its helper.
type Runtime struct {
	Root    string // libcontainer's state root, e.g. <state_dir>/runc: one directory per container id
	Systemd bool   // the systemd cgroup driver
	Helper  string // the berth-monitor executable that runs helper operations
	// HelperTimeout bounds one helper run but exec's (defaultHelperTimeout when 0).
	HelperTimeout time.Duration
	// Binary, when its Path is set, makes the helper run an OCI runtime binary (oci/ociruntime) instead of
	// libcontainer; Root is then berth's records of that runtime's containers, in State's format.
	Binary Binary
}

// Binary is an OCI runtime executable with runc's command line (crun, runsc, kata-runtime, runc), a RuntimeClass
// handler's.
type Binary struct {
	Path      string   // absolute
	Root      string   // the runtime's own state root, its --root
	ExtraArgs []string // global options, before the command
}

// StateFile is libcontainer's record of a container in its directory under the root.
const StateFile = "state.json"

// State is what berth reads of libcontainer's state.json (the pinned runc's libcontainer.State).
type State struct {
	ID string `json:"id"`
	// InitPid is the container's init in the host PID namespace; InitStart its start time in clock ticks
	// since boot (/proc/<pid>/stat field 22), which tells it from a later process given the same pid.
	InitPid     int               `json:"init_process_pid"`
	InitStart   uint64            `json:"init_process_start"`
	Created     time.Time         `json:"created"`
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"` // per v1 controller; "" is the v2 hierarchy
	Config      struct {
		Cgroups *cgroups.Cgroup `json:"cgroups"`
	} `json:"config"`
}

// Load reads the state of container id; an error wrapping errdefs.ErrNotFound when it has none.
func (r *Runtime) Load(id string) (*State, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.Root, id, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("container", id)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: state: %w", id, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("container %s: state: %w", id, err)
	}
	if st.Config.Cgroups == nil {
		st.Config.Cgroups = &cgroups.Cgroup{}
	}
	if st.Config.Cgroups.Resources == nil {
		st.Config.Cgroups.Resources = &cgroups.Resources{}
	}
	return &st, nil
}

// checkID refuses an id that is not one directory name below the root.
func checkID(id string) error {
	if id == "" || id != filepath.Base(id) || strings.HasPrefix(id, ".") {
		return errdefs.InvalidArgument("container id", "%q", id)
	}
	return nil
}

// Pid is the container's init process while it runs, 0 once it is gone.
func (s *State) Pid() int {
	if s.InitPid <= 0 || ProcessStart(s.InitPid) != s.InitStart {
		return 0
	}
	return s.InitPid
}

// ProcessStart is pid's start time in clock ticks since boot, 0 when there is no such process.
func ProcessStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces and parentheses: fields count from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64) // field 22, starttime
	return n
}

// Signal sends sig to the container's init process or, with all, to every process of its cgroup. A container
// without processes is an error wrapping errdefs.ErrFailedPrecondition.
func (s *State) Signal(sig syscall.Signal, all bool) error {
	if all {
		return s.signalAll(sig)
	}
	// A pidfd pins the process: once its start time matches, the signal cannot reach a recycled pid.
	fd, err := unix.PidfdOpen(s.InitPid, 0)
	if err != nil {
		return errdefs.FailedPrecondition("container %s: signal: init process %d is gone", s.ID, s.InitPid)
	}
	defer unix.Close(fd)
	if ProcessStart(s.InitPid) != s.InitStart {
		return errdefs.FailedPrecondition("container %s: signal: init process %d is gone", s.ID, s.InitPid)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errdefs.FailedPrecondition("container %s: signal: init process %d is gone", s.ID, s.InitPid)
		}
		return fmt.Errorf("container %s: signal %v: %w", s.ID, sig, err)
	}
	return nil
}

// Stats reads the container's cgroup.
func (s *State) Stats() (*Stats, error) {
	m, err := s.cgroup()
	if err != nil {
		return nil, err
	}
	st, err := CgroupStats(m)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	return st, nil
}

// cgroup is a manager of the container's cgroup for reading, freezing and listing; only libcontainer changes it.
// A State with only ID and CgroupPaths set (the monitor's) will do.
func (s *State) cgroup() (cgroups.Manager, error) {
	cg := s.Config.Cgroups
	if cg == nil {
		cg = &cgroups.Cgroup{Resources: &cgroups.Resources{}}
	}
	var m cgroups.Manager
	var err error
	if cgroups.IsCgroup2UnifiedMode() {
		m, err = fs2.NewManager(cg, s.CgroupPaths[""])
	} else {
		m, err = fs.NewManager(cg, s.CgroupPaths)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: cgroup: %w", s.ID, err)
	}
	return m, nil
}

// Processes lists the pids of the container's cgroup, exec processes included.
func (s *State) Processes() ([]int, error) {
	m, err := s.cgroup()
	if err != nil {
		return nil, err
	}
	pids, err := m.GetAllPids()
	if err != nil {
		return nil, fmt.Errorf("container %s: list processes: %w", s.ID, err)
	}
	return pids, nil
}
