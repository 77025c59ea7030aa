// Package runc runs OCI bundles with libcontainer. It is the only package importing runc's libcontainer,
// whose API changes between releases (pinned: runc v1.5.3).
//
// A container is made in two steps, as with `runc create` and `runc start`: Create starts libcontainer's
// init, which sets the container up and then waits on the exec fifo (the CRI "created" state); Start
// releases the fifo and the container's process runs. The process that calls Create is the parent of the
// container and must outlive it (berth's per-pod monitor); any process can Load a container afterwards to
// signal it, exec in it, update or destroy it. Only berth-monitor links this package: the monitor and berthd
// run each operation in a "berth-monitor runc" helper process (Helper; oci/ctr is the calling side).
//
// Every binary that links this package can serve as the container init: it must call Init when started
// as "<binary> init" (libcontainer re-executes /proc/self/exe that way). The nsenter import below is the
// C constructor that joins namespaces before the Go runtime starts.
package runc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // device rules for the cgroup managers
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// Init is the entry point of "<binary> init". It does not return.
func Init() { libcontainer.Init() }

// Runtime creates and loads containers whose libcontainer state lives under Root (one directory per
// container id).
type Runtime struct {
	Root    string // e.g. <state_dir>/runc
	Systemd bool   // cgroupsPath is "slice:prefix:name" and cgroups are made through systemd
}

// Stdio is the standard input and output of a container's process. Files are passed to the process as
// they are, so no goroutine of the caller copies its output.
type Stdio struct {
	Stdin          *os.File // nil: /dev/null
	Stdout, Stderr *os.File // nil: /dev/null
	// Terminal gives the process a pseudo-terminal instead (Stdin, Stdout and Stderr are ignored);
	// Container.Console returns its master side.
	Terminal bool
}

// Status is a container's state as libcontainer sees it.
type Status string

const (
	Created Status = "created" // init waits on the exec fifo
	Running Status = "running"
	Paused  Status = "paused"
	Stopped Status = "stopped" // no init process (exited or never started)
)

// Container is a container created or loaded by a Runtime.
type Container struct {
	lc      *libcontainer.Container
	cg      cgroups.Manager
	console *os.File // pty master; only on a container returned by Create with Stdio.Terminal
}

// Create creates the container id from the OCI spec of the bundle directory (the spec's relative paths are
// resolved against it) and starts its init, which waits for Start. The calling process becomes the
// parent of the container's process and must reap it.
func (r *Runtime) Create(id, bundle string, spec *specs.Spec, stdio Stdio) (_ *Container, retErr error) {
	cfg, err := libcontainerConfig(id, bundle, spec, r.Systemd)
	if err != nil {
		return nil, err
	}
	lc, err := libcontainer.Create(r.Root, id, cfg)
	if err != nil {
		return nil, wrapErr(id, "create", err)
	}
	c := &Container{lc: lc}
	defer func() {
		if retErr != nil {
			if c.console != nil {
				c.console.Close()
			}
			lc.Destroy()
		}
	}()
	p := newProcess(spec.Process)
	p.Init = true
	var consoleSock *os.File
	if stdio.Terminal {
		parent, child, err := ctr.SocketPair("console socket of " + id)
		if err != nil {
			return nil, err
		}
		defer parent.Close()
		defer child.Close()
		p.ConsoleSocket, consoleSock = child, parent
	} else {
		setStdio(p, stdio.Stdin, stdio.Stdout, stdio.Stderr)
	}
	if err := lc.Start(p); err != nil {
		return nil, wrapErr(id, "start init", err)
	}
	if consoleSock != nil {
		// Our copy of the child end must be closed for a missing console to read as EOF.
		p.ConsoleSocket.Close()
		if c.console, err = ctr.RecvFile(consoleSock, "terminal of "+id); err != nil {
			return nil, fmt.Errorf("container %s: receive console: %w", id, err)
		}
	}
	if c.cg, err = cgroupManager(lc); err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	return c, nil
}

// Load returns the container id, or an error wrapping errdefs.ErrNotFound when it has no state.
func (r *Runtime) Load(id string) (*Container, error) {
	lc, err := libcontainer.Load(r.Root, id)
	if err != nil {
		return nil, wrapErr(id, "load", err)
	}
	cg, err := cgroupManager(lc)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	return &Container{lc: lc, cg: cg}, nil
}

// Destroy destroys the container id if it exists (see Container.Destroy). A state directory left
// without a state file by a create that was interrupted is removed.
func (r *Runtime) Destroy(id string) error {
	c, err := r.Load(id)
	if errdefs.IsNotFound(err) {
		if err := os.RemoveAll(filepath.Join(r.Root, filepath.Base(id))); err != nil {
			return fmt.Errorf("container %s: remove state: %w", id, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return c.Destroy()
}

func cgroupManager(lc *libcontainer.Container) (cgroups.Manager, error) {
	st, err := lc.State()
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	cg, err := manager.NewWithPaths(st.Config.Cgroups, st.CgroupPaths)
	if err != nil {
		return nil, fmt.Errorf("cgroup manager: %w", err)
	}
	return cg, nil
}

// ID is the container id.
func (c *Container) ID() string { return c.lc.ID() }

// Console is the master side of the container's pseudo-terminal, nil without one; Destroy closes it.
func (c *Container) Console() *os.File { return c.console }

// Start runs the container's process: init stops waiting on the exec fifo.
func (c *Container) Start() error {
	if err := c.lc.Exec(); err != nil {
		return wrapErr(c.ID(), "start", err)
	}
	return nil
}

// State describes a container.
type State struct {
	ID      string
	Status  Status
	Pid     int // the container's init process, in the caller's PID namespace; 0 when stopped
	Created time.Time
	Bundle  string
	// CgroupPaths maps each controller to the container's cgroup ("" is the cgroup v2 hierarchy).
	CgroupPaths map[string]string
}

// State reports the container's status and init process.
func (c *Container) State() (State, error) {
	st, err := c.lc.State()
	if err != nil {
		return State{}, wrapErr(c.ID(), "state", err)
	}
	status, err := c.Status()
	if err != nil {
		return State{}, err
	}
	s := State{ID: c.ID(), Status: status, Created: st.Created, CgroupPaths: st.CgroupPaths}
	if status != Stopped {
		s.Pid = st.InitProcessPid
	}
	for _, l := range st.Config.Labels {
		if b, ok := strings.CutPrefix(l, "bundle="); ok {
			s.Bundle = b
		}
	}
	return s, nil
}

// Status reports whether the container is created, running, paused or stopped.
func (c *Container) Status() (Status, error) {
	s, err := c.lc.Status()
	if err != nil {
		return "", wrapErr(c.ID(), "status", err)
	}
	switch s {
	case libcontainer.Created:
		return Created, nil
	case libcontainer.Running:
		return Running, nil
	case libcontainer.Paused:
		return Paused, nil
	default:
		return Stopped, nil
	}
}

// SharesPIDNamespace reports whether the container has no PID namespace of its own, so that its init
// exiting does not end its other processes.
func (c *Container) SharesPIDNamespace() bool {
	cfg := c.lc.Config()
	return !cfg.Namespaces.IsPrivate(configs.NEWPID)
}

// Destroy kills every process of the container and removes its cgroup and state. It succeeds on a
// container already destroyed.
func (c *Container) Destroy() error {
	if c.cg.Exists() {
		if err := ctr.SignalCgroup(c.ID(), c.cg, unix.SIGKILL); err != nil && !errdefs.IsFailedPrecondition(err) {
			return err
		}
	}
	// Until the kernel has finished killing init, libcontainer refuses to destroy a running container.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.lc.Destroy()
		if err == nil || !errors.Is(err, libcontainer.ErrRunning) || time.Now().After(deadline) {
			if err != nil {
				return wrapErr(c.ID(), "destroy", err)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.console != nil {
		c.console.Close()
		c.console = nil
	}
	return nil
}

// wrapErr maps libcontainer's errors to errdefs sentinels.
func wrapErr(id, op string, err error) error {
	switch {
	case errors.Is(err, libcontainer.ErrNotExist):
		return fmt.Errorf("%s: %w", op, errdefs.NotFound("container", id))
	case errors.Is(err, libcontainer.ErrExist):
		return fmt.Errorf("%s: %w", op, errdefs.AlreadyExists("container", id))
	case errors.Is(err, libcontainer.ErrInvalidID):
		return errdefs.InvalidArgument("container id", "%q: %v", id, err)
	case errors.Is(err, libcontainer.ErrNotRunning), errors.Is(err, libcontainer.ErrRunning),
		errors.Is(err, libcontainer.ErrPaused), errors.Is(err, libcontainer.ErrNotPaused):
		return errdefs.FailedPrecondition("container %s: %s: %v", id, op, err)
	}
	return fmt.Errorf("container %s: %s: %w", id, op, err)
}
