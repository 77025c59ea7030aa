package monitor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/crilog"
	"github.com/berthcri/berth/oci/runc"
)

// A container in its monitor:
//
//	(creating) ──create ok──▶ created ──start──▶ running ──init exits──▶ exited ──remove──▶ (gone)
//	                             └──────────init killed / dies─────────────▶┘
//
// "creating" is not reported by State. Remove kills whatever still runs first.
type container struct {
	id     string
	req    CreateRequest
	rc     *runc.Container
	log    *crilog.File // nil without a log path
	stdin  *os.File     // where attachers' stdin goes: a pipe's write end or the terminal; nil without stdin
	outs   []*os.File   // our ends of stdout and stderr, or the terminal
	pumps  sync.WaitGroup
	exited chan struct{} // closed once the exit is recorded

	op sync.Mutex // serializes start and remove

	mu        sync.Mutex
	status    Status // "" while being created
	pid       int
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
)

func (s *server) create(r *CreateRequest) (retErr error) {
	if r == nil || r.ID == "" {
		return errdefs.InvalidArgument("id", "empty container id")
	}
	if !filepath.IsAbs(r.Bundle) {
		return errdefs.InvalidArgument("bundle", "%q is not an absolute path", r.Bundle)
	}
	c := &container{id: r.ID, req: *r, exited: make(chan struct{}), attachers: make(map[*attacher]struct{})}
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
			if c.log != nil {
				c.log.Close()
			}
			s.mu.Lock()
			delete(s.containers, r.ID)
			s.mu.Unlock()
		}
	}()

	spec, err := readSpec(r.Bundle)
	if err != nil {
		return err
	}
	if spec.Process != nil && spec.Process.Terminal != r.TTY {
		return errdefs.InvalidArgument("tty", "%v but the spec's process.terminal is %v", r.TTY, spec.Process.Terminal)
	}
	if r.LogPath != "" {
		if c.log, err = crilog.Open(r.LogPath); err != nil {
			return fmt.Errorf("container %s: %w", r.ID, err)
		}
	}
	stdio, child, err := c.pipes()
	defer func() {
		for _, f := range child {
			f.Close()
		}
	}()
	if err != nil {
		return fmt.Errorf("container %s: stdio: %w", r.ID, err)
	}
	s.reaper.starting.RLock()
	rc, err := s.rt.Create(r.ID, r.Bundle, spec, stdio)
	var exit <-chan unix.WaitStatus
	if err == nil {
		c.pid = rc.Pid()
		exit = s.reaper.watch(c.pid)
	}
	s.reaper.starting.RUnlock()
	if err != nil {
		return err
	}
	c.rc = rc
	if r.TTY {
		c.outs = []*os.File{rc.Console()}
		if r.Stdin {
			c.stdin = rc.Console()
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

func readSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, errdefs.InvalidArgument("bundle", "%s: %v", bundle, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, errdefs.InvalidArgument("bundle", "%s/config.json: %v", bundle, err)
	}
	return &spec, nil
}

// pipes makes the container's stdio and returns the ends to close once the container got them.
func (c *container) pipes() (runc.Stdio, []*os.File, error) {
	if c.req.TTY {
		return runc.Stdio{Terminal: true}, nil, nil
	}
	var st runc.Stdio
	var child []*os.File
	for _, out := range []**os.File{&st.Stdout, &st.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return st, child, err
		}
		*out = w
		child, c.outs = append(child, w), append(c.outs, r)
	}
	if c.req.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return st, child, err
		}
		st.Stdin, c.stdin = r, w
		child = append(child, r)
	}
	return st, child, nil
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
	buf := make([]byte, 16*1024)
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
	if n, err := c.rc.OOMKillCount(); err != nil {
		s.log.Warn("read oom kill count", "id", c.id, "err", err)
	} else {
		e.OOMKilled = n > 0
	}
	// Without a PID namespace of its own the container's other processes outlive init, holding the
	// output pipes.
	if c.rc.SharesPIDNamespace() {
		if err := c.rc.Signal(unix.SIGKILL, true); err != nil && !errdefs.IsFailedPrecondition(err) {
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
		s.log.Error("record exit", "id", c.id, "err", err)
	}
	c.mu.Lock()
	c.status, c.exit, c.pid = StatusExited, e, 0
	c.mu.Unlock()
	close(c.exited)
	c.closeFiles()
	s.log.Info("container exited", "id", c.id, "exit_code", e.ExitCode, "signal", e.Signal, "oom_killed", e.OOMKilled)
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
	if err := c.rc.Start(); err != nil {
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

// signal sends sig to the container's init; SIGKILL goes to every process of the container. A
// container that already exited is not an error.
func (s *server) signal(id string, sig syscall.Signal) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	st := c.status
	c.mu.Unlock()
	switch st {
	case StatusExited:
		return nil
	case "":
		return errdefs.FailedPrecondition("container %s is being created", id)
	}
	err = c.rc.Signal(sig, sig == unix.SIGKILL)
	if errdefs.IsFailedPrecondition(err) {
		return nil // exiting
	}
	return err
}

// remove kills the container if needed and destroys it. An unknown id is destroyed in libcontainer in
// case a create left it there.
func (s *server) remove(id string) error {
	c, err := s.get(id)
	if errdefs.IsNotFound(err) {
		return s.rt.Destroy(id)
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
		if err := c.rc.Signal(unix.SIGKILL, true); err != nil && !errdefs.IsFailedPrecondition(err) {
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
	s.reaper.starting.RLock() // poststop hooks are children too
	err = c.rc.Destroy()
	s.reaper.starting.RUnlock()
	if err != nil {
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
	return c.log.Reopen()
}

func statusName(s Status) string {
	if s == "" {
		return "being created"
	}
	return string(s)
}
