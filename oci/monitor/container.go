package monitor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/crilog"
	"github.com/berthcri/berth/oci/ctr"
)

// A container in its monitor:
//
//	(creating) ──create ok──▶ created ──start──▶ running ──init exits──▶ exited ──remove──▶ (gone)
//	                             └──────────init killed / dies─────────────▶┘
//
// "creating" is not reported by State. Remove kills whatever still runs first. libcontainer's part of each
// step runs in a helper process (server.helpers), but for start and remove where the monitor can do libcontainer's
// work itself (inplace.go).
type container struct {
	id     string
	req    CreateRequest
	log    *crilog.File // nil without a log path
	stdin  *os.File     // where attachers' stdin goes: a pipe's write end or the terminal; nil without stdin
	outs   []*os.File   // our ends of stdout and stderr, or the terminal
	pumps  sync.WaitGroup
	exited chan struct{} // closed once the exit is recorded
	// destroyNeedsHelper, set by create: poststop hooks or an intelRdt group, which only libcontainer's destroy handles.
	destroyNeedsHelper bool

	op sync.Mutex // serializes start and remove

	mu        sync.Mutex
	status    Status // "" while being created
	pid       int
	pidfd     int  // of init, from create until its exit is recorded; signals go through it
	sharesPID bool // no PID namespace of its own: SIGKILL must reach every process of the cgroup
	cgroups   map[string]string
	oom       *oomCount // the OOM kills seen while it ran; nil without server.oom
	createdAt time.Time
	startedAt time.Time
	exit      *Exit
	attachers map[*attacher]struct{}

	stdinMu     sync.Mutex
	stdinClosed bool
}

const (
	// pumpDrainTimeout bounds the wait for the output pipes to end after init exited: a process that
	// escaped the container's kill must not hold the exit record.
	pumpDrainTimeout = 2 * time.Second
	// removeKillTimeout bounds the wait for a killed container's exit.
	removeKillTimeout = 10 * time.Second
	// pumpBufSize is the read buffer of each output stream, held for the container's life.
	pumpBufSize = 8 * 1024
)

func (s *server) create(r *CreateRequest) (retErr error) {
	if r == nil || r.ID == "" {
		return errdefs.InvalidArgument("id", "empty container id")
	}
	if !filepath.IsAbs(r.Bundle) {
		return errdefs.InvalidArgument("bundle", "%q is not an absolute path", r.Bundle)
	}
	c := &container{id: r.ID, req: *r, pidfd: -1, exited: make(chan struct{}), attachers: make(map[*attacher]struct{})}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errdefs.FailedPrecondition("monitor is shutting down")
	}
	if _, ok := s.containers[r.ID]; ok {
		s.mu.Unlock()
		return errdefs.AlreadyExists("container", r.ID)
	}
	s.containers[r.ID] = c
	s.mu.Unlock()
	defer func() {
		if retErr != nil {
			c.closeFiles()
			c.mu.Lock()
			c.closePidfd()
			c.mu.Unlock()
			if c.log != nil {
				c.log.Close()
			}
			s.mu.Lock()
			delete(s.containers, r.ID)
			s.mu.Unlock()
		}
	}()

	var err error
	if r.LogPath != "" {
		name := r.LogPath
		if r.LogDir != "" {
			if name, err = filepath.Rel(r.LogDir, r.LogPath); err != nil || !filepath.IsLocal(name) {
				return errdefs.InvalidArgument("log_path", "%q is not inside the log directory %q", r.LogPath, r.LogDir)
			}
		}
		if c.log, err = crilog.Open(r.LogDir, name); err != nil {
			if errors.Is(err, crilog.ErrUnsafePath) {
				return errdefs.InvalidArgument("log_path", "%v", err)
			}
			return fmt.Errorf("container %s: %w", r.ID, err)
		}
	}
	if err := reserveExit(r.Bundle); err != nil {
		return fmt.Errorf("container %s: %w", r.ID, err)
	}
	child, consoleSock, err := c.pipes()
	defer func() {
		for _, f := range child {
			f.Close()
		}
	}()
	if err != nil {
		return fmt.Errorf("container %s: stdio: %w", r.ID, err)
	}
	if consoleSock != nil {
		defer consoleSock.Close()
	}
	args := []string{"-bundle", r.Bundle}
	switch {
	case r.TTY:
		args = append(args, "-tty")
	case r.Stdin:
		args = append(args, "-stdin")
	}
	exit, err := s.createInit(c, child, args)
	if err != nil {
		return err
	}
	if consoleSock != nil {
		for _, f := range child {
			f.Close() // the helper is gone: a terminal it did not send reads as EOF
		}
		child = nil
		console, err := ctr.RecvFile(consoleSock, "terminal")
		if err != nil {
			s.destroyFailed(c)
			return fmt.Errorf("container %s: %w", r.ID, err)
		}
		c.outs = []*os.File{console}
		if r.Stdin {
			c.stdin = console
		}
	}
	c.startPumps()
	c.mu.Lock()
	c.status, c.createdAt = StatusCreated, time.Now()
	c.mu.Unlock()
	go s.waitExit(c, exit)
	s.log.Info("container created", "id", r.ID, "pid", c.pid)
	return nil
}

// createInit runs the create helper, which starts the container's init with the files child, and takes
// init over: a pidfd of it and the watch of its exit.
func (s *server) createInit(c *container, child []*os.File, args []string) (<-chan unix.WaitStatus, error) {
	s.reaper.starting.RLock()
	res, err := s.helpers.Run(ctr.OpCreate, c.id, child, args...)
	if err != nil {
		s.reaper.starting.RUnlock()
		return nil, err
	}
	// init is our child now, and the reaper waits for starting: the pid is still init's.
	pidfd, err := unix.PidfdOpen(res.Pid, 0)
	var exit <-chan unix.WaitStatus
	if err == nil {
		c.pid, c.pidfd, c.sharesPID, c.cgroups = res.Pid, pidfd, res.SharesPIDNamespace, res.CgroupPaths
		c.destroyNeedsHelper = res.DestroyNeedsHelper
		exit = s.reaper.watch(res.Pid)
	}
	s.reaper.starting.RUnlock()
	if err != nil {
		s.destroyFailed(c)
		return nil, fmt.Errorf("container %s: pidfd of init %d: %w", c.id, res.Pid, err)
	}
	if dir := res.CgroupPaths[""]; s.oom != nil && dir != "" {
		if c.oom, err = s.oom.watch(dir); err != nil {
			s.log.Warn("no OOM watch: kills are read at exit only", "id", c.id, "err", err)
		}
	}
	return exit, nil
}

// destroyFailed destroys a container whose create failed after its helper succeeded.
func (s *server) destroyFailed(c *container) {
	s.reaper.starting.RLock()
	_, err := s.helpers.Run(ctr.OpDestroy, c.id, nil)
	s.reaper.starting.RUnlock()
	if err != nil {
		s.log.Warn("destroy a container whose create failed", "id", c.id, "err", err)
	}
}

// pipes makes the container's stdio and returns the ends for the create helper, in its order (stdin,
// stdout, stderr), to close once the container got them. With a terminal, it is the socket on which the
// helper sends the terminal's master side, whose other end is consoleSock.
func (c *container) pipes() (child []*os.File, consoleSock *os.File, err error) {
	if c.req.TTY {
		parent, child, err := ctr.SocketPair("console socket")
		if err != nil {
			return nil, nil, err
		}
		return []*os.File{child}, parent, nil
	}
	if c.req.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return child, nil, err
		}
		c.stdin, child = w, append(child, r)
	}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			return child, nil, err
		}
		child, c.outs = append(child, w), append(c.outs, r)
	}
	return child, nil, nil
}

func (c *container) startPumps() {
	streams := []struct {
		s     crilog.Stream
		frame byte
	}{{crilog.Stdout, frameStdout}, {crilog.Stderr, frameStderr}}
	for i, f := range c.outs {
		c.pumps.Go(func() { c.pump(f, streams[i].s, streams[i].frame) })
	}
}

// pump copies one output stream to the log and to the attachers until it ends.
func (c *container) pump(r *os.File, stream crilog.Stream, frame byte) {
	var lw *crilog.Writer
	if c.log != nil {
		lw = c.log.NewWriter(stream)
		defer lw.Close()
	}
	buf := make([]byte, pumpBufSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if lw != nil {
				lw.Write(buf[:n])
			}
			c.broadcast(frame, buf[:n])
		}
		if err != nil { // EOF, or EIO from a terminal whose other side closed
			return
		}
	}
}

// waitExit records the container's exit: exit code and OOM flag (read before anything removes the
// cgroup), the output drained to the log, exit.json written, attachers told.
func (s *server) waitExit(c *container, exit <-chan unix.WaitStatus) {
	ws := <-exit
	e := &Exit{FinishedAt: time.Now()}
	if ws.Signaled() {
		e.ExitCode, e.Signal = 128+int(ws.Signal()), unix.SignalName(ws.Signal())
	} else {
		e.ExitCode = ws.ExitStatus()
	}
	e.OOMKilled = s.oomKilled(c)
	// Without a PID namespace of its own the container's other processes outlive init, holding the
	// output pipes.
	if c.sharesPID {
		if err := s.killAll(c); err != nil {
			s.log.Warn("kill remaining processes", "id", c.id, "err", err)
		}
	}
	c.drain()
	if c.log != nil {
		c.log.Close() // nothing more to write; the drop count stays readable
	}
	c.mu.Lock()
	e.StartedAt = c.startedAt
	c.mu.Unlock()
	if err := writeExit(c.req.Bundle, e); err != nil {
		// berthd learns of an exit from this file alone: without it the container would be running for ever. The
		// monitor exits instead, and berthd, which waits on its pidfd, reports the pod's containers exited and
		// destroys them.
		s.log.Error("cannot record the exit: the monitor exits", "id", c.id, "err", err)
		os.Exit(exitRecordFailed)
	}
	c.mu.Lock()
	c.status, c.exit, c.pid = StatusExited, e, 0
	c.closePidfd()
	c.mu.Unlock()
	close(c.exited)
	c.closeFiles()
	s.log.Info("container exited", "id", c.id, "exit_code", e.ExitCode, "signal", e.Signal, "oom_killed", e.OOMKilled)
}

// oomKilled says whether the kernel OOM-killed a process of the container, read from its cgroup at init's exit or
// seen earlier by the watch (the cgroup may be gone already, see oomWatch).
func (s *server) oomKilled(c *container) bool {
	n, err := ctr.OOMKillCountAt(c.cgroups)
	if c.oom != nil {
		s.oom.unwatch(c.oom)
		return max(n, c.oom.count()) > 0
	}
	if err != nil {
		s.log.Warn("read oom kill count", "id", c.id, "err", err)
	}
	return n > 0
}

// drain waits for the pumps to reach the end of the output; past pumpDrainTimeout the pipes are closed.
func (c *container) drain() {
	done := make(chan struct{})
	go func() {
		c.pumps.Wait()
		close(done)
	}()
	t := time.NewTimer(pumpDrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for _, f := range c.outs {
			f.Close()
		}
		<-done
	}
}

// closePidfd closes init's pidfd; c.mu is held.
func (c *container) closePidfd() {
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
}

func (c *container) closeFiles() {
	for _, f := range c.outs {
		f.Close()
	}
	c.stdinMu.Lock()
	if c.stdin != nil && !c.req.TTY {
		c.stdin.Close()
	}
	c.stdinClosed = true
	c.stdinMu.Unlock()
}

func (c *container) state() (ContainerState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == "" {
		return ContainerState{}, false
	}
	st := ContainerState{ID: c.id, Status: c.status, Pid: c.pid, CreatedAt: c.createdAt, StartedAt: c.startedAt, Exit: c.exit}
	if c.log != nil {
		st.LogDropped = c.log.Dropped()
	}
	return st, true
}

func (s *server) start(id string) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if c.status != StatusCreated {
		st := c.status
		c.mu.Unlock()
		return errdefs.FailedPrecondition("container %s is %s, not created", id, statusName(st))
	}
	// Set before the process runs, so that an exit recorded right away has it.
	c.startedAt = time.Now()
	c.mu.Unlock()
	s.reaper.starting.RLock()
	err = s.startProcess(c)
	s.reaper.starting.RUnlock()
	if err != nil {
		c.mu.Lock()
		c.startedAt = time.Time{}
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	if c.status == StatusCreated {
		c.status = StatusRunning
	}
	c.mu.Unlock()
	s.log.Info("container started", "id", id)
	return nil
}

// startProcess runs the created container's process; the caller holds reaper.starting for reading, so that init,
// should it die, stays unreaped and its pidfd open. Under libcontainer the monitor releases init itself; an OCI
// runtime binary's start runs in the helper.
func (s *server) startProcess(c *container) error {
	if s.helpers.Binary.Path != "" {
		_, err := s.helpers.Run(ctr.OpStart, c.id, nil)
		return err
	}
	// A duplicate: waitExit closes c.pidfd once the exit is recorded.
	c.mu.Lock()
	if c.pidfd < 0 {
		c.mu.Unlock()
		return fmt.Errorf("container %s: start: container process is already dead", c.id)
	}
	pidfd, err := unix.FcntlInt(uintptr(c.pidfd), unix.F_DUPFD_CLOEXEC, 0)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("container %s: start: pidfd of init: %w", c.id, err)
	}
	defer unix.Close(pidfd)
	if err := releaseInit(filepath.Join(s.helpers.Root, c.id), pidfd, s.helpers.Timeout()); err != nil {
		return fmt.Errorf("container %s: start: %w", c.id, err)
	}
	return nil
}

// destroy destroys the container once its init was reaped. The monitor removes its cgroup and state itself where
// that is all libcontainer's destroy would do; the systemd driver's scope unit, poststop hooks, intelRdt groups and
// OCI runtime binaries take the helper.
func (s *server) destroy(c *container) error {
	if s.helpers.Binary.Path == "" && !s.helpers.Systemd && !c.destroyNeedsHelper {
		return s.destroyExited(c)
	}
	s.reaper.starting.RLock()
	defer s.reaper.starting.RUnlock()
	_, err := s.helpers.Run(ctr.OpDestroy, c.id, nil)
	return err
}

// signal sends sig to the container's init; SIGKILL goes to every process of the container. A
// container that already exited is not an error.
func (s *server) signal(id string, sig syscall.Signal) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	return s.kill(c, sig)
}

// kill sends sig to init through its pidfd, which is open until the exit is recorded: the pid cannot
// have been reused. SIGKILL to a container sharing its PID namespace goes to every process of its cgroup
// (the helper); with a namespace of its own, the kernel kills the rest with init.
func (s *server) kill(c *container, sig syscall.Signal) error {
	c.mu.Lock()
	switch c.status {
	case StatusExited:
		c.mu.Unlock()
		return nil
	case "":
		c.mu.Unlock()
		return errdefs.FailedPrecondition("container %s is being created", c.id)
	}
	if sig != unix.SIGKILL || !c.sharesPID {
		err := unix.PidfdSendSignal(c.pidfd, sig, nil, 0)
		c.mu.Unlock()
		if err != nil && err != unix.ESRCH { // ESRCH: exiting
			return fmt.Errorf("container %s: signal %v: %w", c.id, sig, err)
		}
		return nil
	}
	c.mu.Unlock()
	return s.killAll(c)
}

// killAll sends SIGKILL to every process of the container's cgroup; none left is not an error. It needs no
// libcontainer, hence no helper: a stop of a container sharing the pod's PID namespace waits for it.
func (s *server) killAll(c *container) error {
	err := (&ctr.State{ID: c.id, CgroupPaths: c.cgroups}).Signal(unix.SIGKILL, true)
	if errdefs.IsFailedPrecondition(err) {
		return nil
	}
	return err
}

// remove kills the container if needed and destroys it. An unknown id is destroyed in libcontainer in
// case a create left it there.
func (s *server) remove(id string) error {
	c, err := s.get(id)
	if errdefs.IsNotFound(err) {
		s.reaper.starting.RLock()
		_, err = s.helpers.Run(ctr.OpDestroy, id, nil)
		s.reaper.starting.RUnlock()
		return err
	}
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	st := c.status
	c.mu.Unlock()
	if st == "" {
		return errdefs.FailedPrecondition("container %s is being created", id)
	}
	if st != StatusExited {
		if err := s.kill(c, unix.SIGKILL); err != nil {
			return err
		}
		t := time.NewTimer(removeKillTimeout)
		select {
		case <-c.exited:
			t.Stop()
		case <-t.C:
			return fmt.Errorf("container %s did not exit %v after SIGKILL: %w", id, removeKillTimeout, errdefs.ErrUnavailable)
		}
	}
	if err := s.destroy(c); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.containers, id)
	s.mu.Unlock()
	s.log.Info("container removed", "id", id)
	return nil
}

// reopenLog reopens the log of a running (or created) container, as containerd only allows.
func (s *server) reopenLog(id string) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	st := c.status
	c.mu.Unlock()
	if st != StatusCreated && st != StatusRunning {
		return errdefs.FailedPrecondition("container %s is %s, not running", id, statusName(st))
	}
	if c.log == nil {
		return nil
	}
	if err := c.log.Reopen(); err != nil {
		if errors.Is(err, crilog.ErrUnsafePath) { // replaced by a symlink or a non-file since it was opened
			return errdefs.FailedPrecondition("container %s: %v", id, err)
		}
		return err
	}
	return nil
}

func statusName(s Status) string {
	if s == "" {
		return "being created"
	}
	return string(s)
}
