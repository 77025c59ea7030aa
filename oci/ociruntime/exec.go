package ociruntime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// Exec runs p in the running container with "exec --detach --pid-file" and waits for it: the helper makes itself a
// child subreaper first, so that the process, orphaned when the runtime exits, becomes its child. The process gets
// the container's process settings (capabilities, rlimits, AppArmor profile, no_new_privileges, oom_score_adj; the
// runtime applies the container's seccomp) with p's command, environment, directory and user, as the libcontainer
// helper does. When ctx ends first, the process and its descendants are killed and the error wraps ctx.Err(); unlike
// libcontainer's exec, which has a cgroup of its own, a descendant that a fork race or a daemon's double fork hides
// from /proc's children lists survives.
//
// It waits with wait4 on the pid: it runs in the exec helper only, never in a process reaping with wait4(-1).
func (r *Runtime) Exec(ctx context.Context, id string, p ctr.ExecProcess, hio ctr.HelperIO) (ctr.ExitStatus, error) {
	if len(p.Args) == 0 {
		return ctr.ExitStatus{}, errdefs.InvalidArgument("exec args", "empty command")
	}
	if err := r.mustExist(id); err != nil {
		return ctr.ExitStatus{}, err
	}
	st, err := (&ctr.Runtime{Root: r.Records}).Load(id)
	if err != nil {
		return ctr.ExitStatus{}, err
	}
	if st.Pid() == 0 {
		return ctr.ExitStatus{}, errdefs.FailedPrecondition("container %s is not running", id)
	}
	proc, err := r.execProcess(id, p, hio.ConsoleSocket != nil)
	if err != nil {
		return ctr.ExitStatus{}, err
	}
	dir := r.recordDir(id)
	procFile, err := writeTemp(dir, "exec-*.json", proc)
	if err != nil {
		return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer os.Remove(procFile)
	pidFile := procFile[:len(procFile)-len(".json")] + ".pid"
	defer os.Remove(pidFile)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: subreaper: %w", id, err)
	}
	args := []string{"exec", "--process", procFile, "--detach", "--pid-file", pidFile}
	var console *consoleSocket
	if hio.ConsoleSocket != nil {
		if console, err = newConsoleSocket(); err != nil {
			return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
		}
		defer console.close()
		args = append(args, "--console-socket", console.path)
	}
	if err := r.run(ctx, call{args: append(args, id), stdin: hio.Stdin, stdout: hio.Stdout, stderr: hio.Stderr}); err != nil {
		// Killed or failed after it started the process (a cancelled exec): that one must not outlive the call.
		if pid, perr := readPid(pidFile); perr == nil {
			unix.Kill(pid, unix.SIGKILL)
			wait(pid)
		}
		return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	pid, err := readPid(pidFile)
	if err != nil {
		return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	if console != nil {
		if err := console.forward(hio.ConsoleSocket); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			wait(pid)
			return ctr.ExitStatus{}, fmt.Errorf("exec in container %s: terminal: %w", id, err)
		}
	}
	waited := make(chan ctr.ExitStatus, 1)
	go func() { waited <- wait(pid) }()
	select {
	case es := <-waited:
		return es, nil
	case <-ctx.Done():
		killTree(pid) // our child, not yet reaped: the pid is still the process's
		<-waited
		return ctr.ExitStatus{Code: 128 + int(unix.SIGKILL), Signal: unix.SIGKILL},
			fmt.Errorf("exec in container %s: %w", id, ctx.Err())
	}
}

// execProcess is the container's process with p's command, environment, directory and user.
func (r *Runtime) execProcess(id string, p ctr.ExecProcess, terminal bool) (*specs.Process, error) {
	b, err := os.ReadFile(filepath.Join(r.recordDir(id), ctr.StateFile))
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: record: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("exec in container %s: record: %w", id, err)
	}
	b, err = os.ReadFile(filepath.Join(rec.Bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("exec in container %s: %s/config.json: no process (%v)", id, rec.Bundle, err)
	}
	proc := *spec.Process
	proc.Args, proc.Env, proc.Terminal, proc.ConsoleSize = p.Args, p.Env, terminal, nil
	if p.Cwd != "" {
		proc.Cwd = p.Cwd
	}
	proc.User = specs.User{UID: p.UID, GID: p.GID, AdditionalGids: p.AdditionalGids, Umask: spec.Process.User.Umask}
	return &proc, nil
}

// wait reaps pid, a child of this process, and says how it ended.
func wait(pid int) ctr.ExitStatus {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			if err != nil {
				return ctr.ExitStatus{Code: 255}
			}
			break
		}
	}
	if ws.Signaled() {
		return ctr.ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
	}
	return ctr.ExitStatus{Code: ws.ExitStatus()}
}

// killTree kills pid and, first, its descendants as /proc lists them (every thread's children, recursively), so that
// none is orphaned and missed. Descendants forked meanwhile are caught by the next rounds, bounded.
func killTree(pid int) {
	for range 3 {
		kids := descendants(pid)
		if len(kids) == 0 {
			break
		}
		for _, k := range kids {
			unix.Kill(k, unix.SIGKILL)
		}
	}
	unix.Kill(pid, unix.SIGKILL)
}

// maxDescendants bounds the walk of a process tree an exec'd (possibly hostile) process may have made.
const maxDescendants = 4096

// descendants lists pid's descendants, breadth first, at most maxDescendants of them.
func descendants(pid int) []int {
	var out []int
	for queue := []int{pid}; len(queue) > 0 && len(out) < maxDescendants; queue = queue[1:] {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(queue[0]) + "/task/*/children")
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if k, err := strconv.Atoi(f); err == nil && k > 0 && len(out) < maxDescendants {
					out = append(out, k)
					queue = append(queue, k)
				}
			}
		}
	}
	return out
}
