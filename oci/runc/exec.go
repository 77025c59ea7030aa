package runc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// ExecIO is an exec'd process's stdio, passed to it as it is (nil: /dev/null), or with a terminal the console
// socket on which runc init sends the terminal's master side.
type ExecIO struct {
	Stdin, Stdout, Stderr *os.File
	ConsoleSocket         *os.File
}

// Exec runs p in the container and waits for it to exit. When ctx ends first, the process and every process
// it started are killed (they run in a cgroup of their own under the container's) and the error wraps
// ctx.Err(). Processes an exec leaves behind when it exits normally are moved to the container's cgroup and
// keep running.
//
// Exec waits for its process with wait4 on its pid: it must not be used by a process that reaps its children
// with wait4(-1) (the monitor). It runs in the exec helper (ctr.OpExec).
func (c *Container) Exec(ctx context.Context, p ctr.ExecProcess, stdio ExecIO) (ctr.ExitStatus, error) {
	if len(p.Args) == 0 {
		return ctr.ExitStatus{}, errdefs.InvalidArgument("exec args", "empty command")
	}
	status, err := c.Status()
	if err != nil {
		return ctr.ExitStatus{}, err
	}
	if status != Running {
		return ctr.ExitStatus{}, errdefs.FailedPrecondition("container %s is %s, not running", c.ID(), status)
	}
	sub, err := c.newSubCgroup("berth-exec-" + randomHex(6))
	if err != nil {
		return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: %w", c.ID(), err)
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
	if stdio.ConsoleSocket != nil {
		lp.ConsoleSocket = stdio.ConsoleSocket
	} else {
		setStdio(lp, stdio.Stdin, stdio.Stdout, stdio.Stderr)
	}
	if err := c.lc.Run(lp); err != nil {
		sub.removeIfAny()
		return ctr.ExitStatus{}, wrapErr(c.ID(), "exec", err)
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
		return ctr.ExitStatus{Code: 128 + int(unix.SIGKILL), Signal: unix.SIGKILL},
			fmt.Errorf("exec in container %s: %w", c.ID(), ctx.Err())
	}
	if sub != nil {
		if err := sub.release(); err != nil {
			return exitStatus(ps), fmt.Errorf("exec in container %s: %w", c.ID(), err)
		}
	}
	if ps == nil {
		return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: process state lost", c.ID())
	}
	return exitStatus(ps), nil
}

func exitStatus(ps *os.ProcessState) ctr.ExitStatus {
	if ps == nil {
		return ctr.ExitStatus{}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return ctr.ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
	}
	return ctr.ExitStatus{Code: ps.ExitCode()}
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

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
