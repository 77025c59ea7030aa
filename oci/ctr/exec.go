package ctr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/tail"
)

// execDrainTimeout bounds how long Exec keeps reading output after the process exited: a background child
// that inherited the pipes must not hold the call.
const execDrainTimeout = time.Second

// execKillTimeout bounds the wait for the helper once Exec asked it to kill the process.
const execKillTimeout = 10 * time.Second

// ExecProcess is a process to run in a running container. What is not here comes from the container's spec:
// capabilities, rlimits, AppArmor profile, no_new_privileges, oom_score_adj, seccomp.
type ExecProcess struct {
	Args           []string `json:"args"`
	Env            []string `json:"env,omitempty"`
	Cwd            string   `json:"cwd,omitempty"`
	UID            uint32   `json:"uid"`
	GID            uint32   `json:"gid"`
	AdditionalGids []uint32 `json:"additional_gids,omitempty"`
	// Terminal runs the process on a pseudo-terminal; Stdout gets everything it prints.
	Terminal bool `json:"-"`
	// Stdin nil is /dev/null. Exec does not wait for Stdin to end: a copy blocked on it returns when its next
	// Read does.
	Stdin io.Reader `json:"-"`
	// Stdout and Stderr nil discard. Output keeps being read after a Write error, so that the process never
	// blocks on a full pipe.
	Stdout, Stderr io.Writer `json:"-"`
	// Resize carries the client terminal's size changes (Terminal only); Exec stops reading it when the
	// process ends.
	Resize <-chan TerminalSize `json:"-"`
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code   int            // exit code; 128+n when killed by signal n
	Signal syscall.Signal // the signal that killed it, 0 on a normal exit
}

// Exec runs p in the running container id, in a helper, and waits for it to exit. The process and everything
// it forks run in a cgroup of their own under the container's: when ctx ends first, the helper kills them all
// and the error wraps ctx.Err(); processes an exec leaves behind when it exits normally are moved to the
// container's cgroup and keep running. The helper also kills the exec if the caller dies: its standard input
// is a pipe from the caller, and EOF on it means cancel.
func (r *Runtime) Exec(ctx context.Context, id string, p ExecProcess) (ExitStatus, error) {
	if len(p.Args) == 0 {
		return ExitStatus{}, errdefs.InvalidArgument("exec args", "empty command")
	}
	spec, err := json.Marshal(p)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	var eio execIO
	defer eio.close()
	args, err := eio.setup(p)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer ctlW.Close()
	// Not killed with ctx: when ctx ends the helper is told to kill the exec's cgroup and report (below).
	cmd := r.command(context.Background(), OpExec, id, args...)
	cmd.Stdin, cmd.ExtraFiles = ctlR, eio.child
	out := tail.New(helperOutputSize)
	cmd.Stdout = out
	err = cmd.Start()
	ctlR.Close()
	eio.closeChild()
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec in container %s: helper: %w", id, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	if _, err := ctlW.Write(append(spec, '\n')); err != nil {
		// The helper is gone already; its result, complete once it was waited for, says why.
		werr := <-waited
		return ExitStatus{}, helperExit(id, out.Bytes(), werr)
	}
	if err := eio.started(p); err != nil {
		ctlW.Close()
		waitBounded(cmd, waited)
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}

	select {
	case err = <-waited:
	case <-ctx.Done():
		ctlW.Close() // the helper kills the exec's cgroup and reports
		waitBounded(cmd, waited)
		eio.drain(execDrainTimeout)
		return ExitStatus{Code: 128 + int(syscall.SIGKILL), Signal: syscall.SIGKILL},
			fmt.Errorf("exec in container %s: %w", id, ctx.Err())
	}
	eio.drain(execDrainTimeout)
	res, err := decodeResult(OpExec, id, out.Bytes(), err)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	return ExitStatus{Code: res.ExitCode, Signal: syscall.Signal(res.Signal)}, nil
}

// helperExit is the error of a helper that ended early.
func helperExit(id string, out []byte, waitErr error) error {
	_, err := decodeResult(OpExec, id, out, waitErr)
	if err == nil {
		err = errors.New("helper ended without running the process")
	}
	return fmt.Errorf("exec in container %s: %w", id, err)
}

// waitBounded waits for the helper, killing it if it does not end in execKillTimeout.
func waitBounded(cmd *exec.Cmd, waited <-chan error) error {
	t := time.NewTimer(execKillTimeout)
	defer t.Stop()
	select {
	case err := <-waited:
		return err
	case <-t.C:
		cmd.Process.Kill()
		return <-waited
	}
}

// execIO holds the exec's pipes (or terminal) and the goroutines copying them.
type execIO struct {
	child   []*os.File // ends passed to the helper, closed once it started
	keep    *os.File   // the caller's stdin file, passed as it is: not ours to close
	stdinW  *os.File   // our end of the stdin pipe, when Stdin is not a file
	outs    []*os.File // our ends of stdout and stderr, or the terminal master
	sock    *os.File   // console socket, terminal only
	copying sync.WaitGroup
	// stopResize ends the resize watcher, terminal with Resize only.
	stopResize func()
}

// setup makes the exec's stdio and returns the helper's flags for them.
func (e *execIO) setup(p ExecProcess) ([]string, error) {
	if p.Terminal {
		parent, child, err := SocketPair("exec console socket")
		if err != nil {
			return nil, err
		}
		e.sock = parent
		e.child = append(e.child, child)
		return []string{"-tty"}, nil
	}
	var args []string
	if p.Stdin != nil {
		args = append(args, "-stdin")
		if f, ok := p.Stdin.(*os.File); ok {
			e.child, e.keep = append(e.child, f), f
		} else {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			e.child, e.stdinW = append(e.child, r), w
		}
	}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		e.child, e.outs = append(e.child, w), append(e.outs, r)
	}
	return args, nil
}

// closeChild closes the ends the helper got; a caller's own stdin file is left open.
func (e *execIO) closeChild() {
	for _, f := range e.child {
		if f != e.keep {
			f.Close()
		}
	}
	e.child = nil
}

// started starts copying; with a terminal it first receives its master side from runc init.
func (e *execIO) started(p ExecProcess) error {
	if p.Terminal {
		master, err := RecvFile(e.sock, "exec terminal")
		if err != nil {
			return err
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
	e.closeChild()
	for _, f := range e.outs {
		f.Close()
	}
	for _, f := range []*os.File{e.stdinW, e.sock} {
		if f != nil {
			f.Close()
		}
	}
}
