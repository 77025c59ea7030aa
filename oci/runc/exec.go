package runc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// execDrainTimeout bounds how long Exec keeps reading output after the process exited: a background
// child that inherited the pipes must not hold the call.
const execDrainTimeout = time.Second

// ExecProcess is a process to run in a running container. What is not here comes from the container's
// spec: capabilities, rlimits, AppArmor profile, no_new_privileges, oom_score_adj, seccomp.
type ExecProcess struct {
	Args           []string
	Env            []string
	Cwd            string
	UID, GID       uint32
	AdditionalGids []uint32
	// Terminal runs the process on a pseudo-terminal; Stdout gets everything it prints.
	Terminal bool
	// Stdin nil is /dev/null. Exec does not wait for Stdin to end: a copy blocked on it returns when
	// its next Read does.
	Stdin io.Reader
	// Stdout and Stderr nil discard. Output keeps being read after a Write error, so that the process
	// never blocks on a full pipe.
	Stdout, Stderr io.Writer
	// Resize carries the client terminal's size changes (Terminal only); Exec stops reading it when the
	// process ends.
	Resize <-chan TerminalSize
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code   int            // exit code; 128+n when killed by signal n
	Signal syscall.Signal // the signal that killed it, 0 on a normal exit
}

// Exec runs p in the container and waits for it to exit. When ctx ends first, the process and every
// process it started are killed (they run in a cgroup of their own under the container's) and the
// error wraps ctx.Err(). Processes an exec leaves behind when it exits normally are moved to the
// container's cgroup and keep running.
//
// Exec waits for its process with wait4 on its pid: it must not be used by a process that reaps its
// children with wait4(-1) (the monitor).
func (c *Container) Exec(ctx context.Context, p ExecProcess) (ExitStatus, error) {
	if len(p.Args) == 0 {
		return ExitStatus{}, errdefs.InvalidArgument("exec args", "empty command")
	}
	status, err := c.Status()
	if err != nil {
		return ExitStatus{}, err
	}
	if status != Running {
		return ExitStatus{}, errdefs.FailedPrecondition("container %s is %s, not running", c.ID(), status)
	}
	sub, err := c.newSubCgroup("berth-exec-" + randomHex(6))
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", c.ID(), err)
	}
	lp := &libcontainer.Process{
		Args:             p.Args,
		Env:              p.Env,
		Cwd:              p.Cwd,
		UID:              int(p.UID),
		GID:              int(p.GID),
		AdditionalGroups: gids(p.AdditionalGids),
	}
	if sub != nil {
		lp.SubCgroupPaths = map[string]string{sub.ctrl: sub.name}
	}
	var eio execIO
	defer eio.close()
	if err := eio.setup(lp, p); err != nil {
		sub.removeIfAny()
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", c.ID(), err)
	}
	if err := c.lc.Run(lp); err != nil {
		sub.removeIfAny()
		return ExitStatus{}, wrapErr(c.ID(), "exec", err)
	}
	if err := eio.started(p); err != nil {
		lp.Signal(unix.SIGKILL)
		lp.Wait()
		sub.killAndRemove()
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", c.ID(), err)
	}

	waited := make(chan *os.ProcessState, 1)
	go func() {
		ps, _ := lp.Wait() // the state is set for non-zero exits too
		waited <- ps
	}()
	var ps *os.ProcessState
	select {
	case ps = <-waited:
	case <-ctx.Done():
		sub.killAndRemove()
		lp.Signal(unix.SIGKILL)
		<-waited
		eio.drain(execDrainTimeout)
		return ExitStatus{Code: 128 + int(unix.SIGKILL), Signal: unix.SIGKILL},
			fmt.Errorf("exec in container %s: %w", c.ID(), ctx.Err())
	}
	eio.drain(execDrainTimeout)
	if sub != nil {
		if err := sub.release(); err != nil {
			return exitStatus(ps), fmt.Errorf("exec in container %s: %w", c.ID(), err)
		}
	}
	if ps == nil {
		return ExitStatus{}, fmt.Errorf("exec in container %s: process state lost", c.ID())
	}
	return exitStatus(ps), nil
}

func exitStatus(ps *os.ProcessState) ExitStatus {
	if ps == nil {
		return ExitStatus{}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
	}
	return ExitStatus{Code: ps.ExitCode()}
}

func (s *subCgroup) removeIfAny() {
	if s != nil {
		s.remove()
	}
}

func (s *subCgroup) killAndRemove() {
	if s != nil {
		s.kill()
		s.remove()
	}
}

// execIO holds the exec's pipes (or terminal) and the goroutines copying them.
type execIO struct {
	child   []*os.File // ends passed to the process, closed once it started
	stdinW  *os.File   // our end of the stdin pipe, when Stdin is not a file
	outs    []*os.File // our ends of stdout and stderr, or the terminal master
	sock    *os.File   // console socket, terminal only
	copying sync.WaitGroup
	// stopResize ends the resize watcher, terminal with Resize only.
	stopResize func()
}

func (e *execIO) setup(lp *libcontainer.Process, p ExecProcess) error {
	if p.Terminal {
		parent, child, err := socketPair("exec-console")
		if err != nil {
			return err
		}
		e.sock = parent
		e.child = append(e.child, child)
		lp.ConsoleSocket = child
		return nil
	}
	if f, ok := p.Stdin.(*os.File); ok && f != nil {
		lp.Stdin = f
	} else if p.Stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		e.child, e.stdinW = append(e.child, r), w
		lp.Stdin = r
	}
	for _, out := range []*io.Writer{&lp.Stdout, &lp.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		e.child, e.outs = append(e.child, w), append(e.outs, r)
		*out = w
	}
	return nil
}

// started closes the process's ends and starts copying.
func (e *execIO) started(p ExecProcess) error {
	for _, f := range e.child {
		f.Close()
	}
	e.child = nil
	if p.Terminal {
		master, err := recvConsole(e.sock)
		if err != nil {
			return fmt.Errorf("receive console: %w", err)
		}
		e.outs = append(e.outs, master)
		if p.Resize != nil {
			e.stopResize = watchResize(master, p.Resize)
		}
		e.copy(p.Stdout, master)
		if p.Stdin != nil {
			go io.Copy(master, p.Stdin)
		}
		return nil
	}
	if w := e.stdinW; w != nil {
		go func() {
			io.Copy(w, p.Stdin)
			w.Close()
		}()
	}
	e.copy(p.Stdout, e.outs[0])
	e.copy(p.Stderr, e.outs[1])
	return nil
}

func (e *execIO) copy(w io.Writer, r *os.File) {
	e.copying.Go(func() {
		buf := make([]byte, 32*1024)
		for {
			n, err := r.Read(buf)
			if n > 0 && w != nil {
				if _, werr := w.Write(buf[:n]); werr != nil {
					w = nil
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// drain waits for the output to end, at most d: then our ends are closed, which ends the copies.
func (e *execIO) drain(d time.Duration) {
	done := make(chan struct{})
	go func() {
		e.copying.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for _, f := range e.outs {
			f.Close()
		}
		<-done
	}
}

func (e *execIO) close() {
	if e.stopResize != nil {
		e.stopResize()
	}
	for _, f := range e.child {
		f.Close()
	}
	for _, f := range e.outs {
		f.Close()
	}
	for _, f := range []*os.File{e.stdinW, e.sock} {
		if f != nil {
			f.Close()
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
