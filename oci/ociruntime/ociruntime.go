// Package ociruntime runs containers with an OCI runtime binary that has runc's command line (crun, runsc,
// kata-runtime, runc itself): a RuntimeClass handler's. It is the second backend of berth's helper
// (oci/runc.Helper), beside libcontainer in process, and is used the same way: one helper process per operation,
// run by the pod monitor or berthd.
//
// The helper runs "create --pid-file" and the runtime leaves the container's init behind when it exits; init is
// then reparented to the pod monitor, a subreaper, exactly like libcontainer's init when the helper exits. An exec
// runs detached ("exec --detach --pid-file") with the helper as a child subreaper, so that the helper waits for the
// process and reports its exit status, as the libcontainer helper does. After create the helper writes a record in
// oci/ctr's state format (<Records>/<id>/state.json: init's pid and start time, its cgroups, the bundle), so that
// berthd and the monitor read, signal and measure the container without asking the runtime.
package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/tail"
	"github.com/berthcri/berth/oci/ctr"
)

// Runtime is one handler's binary and where berth keeps its records of the binary's containers.
type Runtime struct {
	Binary  ctr.Binary
	Records string // berth's records: <Records>/<id>/state.json, in oci/ctr's format
	Systemd bool   // --systemd-cgroup: the spec's cgroupsPath is "slice:prefix:name"
}

// callTimeout bounds one call of the binary: under the helper's own minute (oci/ctr), so that a hung runtime is
// reported as such, with what it wrote, rather than as a killed helper.
const callTimeout = 45 * time.Second

// maxErrText bounds what of the runtime's log and stderr goes in an error.
const maxErrText = 4 << 10

// waitDelay bounds the wait for the binary's output once it exited: a container process that inherited stderr
// must not hold the call.
const waitDelay = 2 * time.Second

// call is one run of the binary: args after the global options, the process's stdio when it is handed to a
// container (nil: /dev/null), and the extra files it gets from fd 3 on.
type call struct {
	args                  []string
	stdin, stdout, stderr *os.File
}

// run runs the binary under callTimeout. Its error messages (its --log, JSON lines, and its stderr when stderr is
// not the container's) end up, bounded, in the error.
func (r *Runtime) run(ctx context.Context, c call) error {
	if err := hideOnce(); err != nil {
		return fmt.Errorf("%s: %w", r.name(c.args), err)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	logf, err := os.CreateTemp("", "berth-runtime-log-")
	if err != nil {
		return fmt.Errorf("%s: log file: %w", r.name(c.args), err)
	}
	defer os.Remove(logf.Name())
	defer logf.Close()
	args := append([]string{"--root", r.Binary.Root, "--log", logf.Name(), "--log-format", "json"}, r.Binary.ExtraArgs...)
	if r.Systemd {
		args = append(args, "--systemd-cgroup")
	}
	cmd := exec.CommandContext(ctx, r.Binary.Path, append(args, c.args...)...)
	cmd.WaitDelay = waitDelay
	// A helper killed at oci/ctr's deadline takes the binary with it rather than leaving it to run on under the
	// monitor. Not inherited by what the binary forks (the container's init).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr := tail.New(maxErrText)
	if c.stdin != nil {
		cmd.Stdin = c.stdin
	}
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	cmd.Stderr = stderr
	if c.stderr != nil {
		cmd.Stderr = c.stderr
	}
	err = cmd.Run()
	if err == nil {
		return nil
	}
	msg := logMessages(logf)
	if msg == "" {
		msg = strings.TrimSpace(stderr.String())
	}
	switch {
	case parent.Err() != nil: // the caller gave up: its error, not a timeout of ours
		err = fmt.Errorf("%w (%w)", err, parent.Err())
	case ctx.Err() != nil:
		err = fmt.Errorf("timed out after %s: %w", callTimeout, errdefs.ErrUnavailable)
	}
	if msg != "" {
		return fmt.Errorf("%s: %w: %s", r.name(c.args), err, msg)
	}
	return fmt.Errorf("%s: %w", r.name(c.args), err)
}

func (r *Runtime) name(args []string) string {
	if len(args) == 0 {
		return r.Binary.Path
	}
	return r.Binary.Path + " " + args[0]
}

// logMessages is the last maxErrText bytes of the runtime's log, each JSON line reduced to its "msg".
func logMessages(f *os.File) string {
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-maxErrText, 0)
	b := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(b, off)
	var msgs []string
	for line := range bytes.SplitSeq(bytes.TrimSpace(b[:n]), []byte("\n")) {
		var l struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(line, &l) == nil && l.Msg != "" {
			msgs = append(msgs, l.Msg)
		} else if len(line) > 0 {
			msgs = append(msgs, string(line))
		}
	}
	return strings.Join(msgs, "; ")
}

// exists says whether the binary has state for container id (a directory under its root, as runc and crun keep).
func (r *Runtime) exists(id string) bool {
	_, err := os.Stat(filepath.Join(r.Binary.Root, id))
	return err == nil
}

// checkID refuses an id that is not one directory name, before it is joined to a path.
func checkID(id string) error {
	if id == "" || id != filepath.Base(id) || strings.HasPrefix(id, ".") || strings.HasPrefix(id, "-") {
		return errdefs.InvalidArgument("container id", "%q", id)
	}
	return nil
}

// mustExist is NotFound for a container the binary has no state of: its own message for that differs by runtime.
func (r *Runtime) mustExist(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if !r.exists(id) {
		return errdefs.NotFound("container", id)
	}
	return nil
}
