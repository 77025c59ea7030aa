package ctr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/tail"
)

// HelperArg is the first argument that makes berth-monitor run one container operation (oci/runc.Helper), with
// libcontainer or, given -binary, an OCI runtime binary:
//
//	berth-monitor runc -root <dir> -id <container> [-systemd] [-binary <path> -binary-root <dir> [-binary-arg <arg>]…] [flags] <op>
const HelperArg = "runc"

// Helper operations.
const (
	OpCreate  = "create"  // create the container from -bundle; its init waits for start
	OpStart   = "start"   // run the created container's process
	OpDestroy = "destroy" // kill what is left, remove the cgroup and libcontainer's state
	OpExec    = "exec"    // run an ExecProcess, read as one line of JSON on stdin, in the running container
	OpUpdate  = "update"  // apply -resources, the JSON of the OCI spec's linux.resources
)

// HelperFirstFD is where the files of create and exec start: stdin (with -stdin), stdout and stderr, or with
// -tty the console socket on which the terminal's master side is sent.
const HelperFirstFD = 3

// HelperIO is what a create or exec helper got at HelperFirstFD on: the process's stdio (nil: /dev/null), or with a
// terminal the socket on which to send its master side.
type HelperIO struct {
	Stdin, Stdout, Stderr *os.File
	ConsoleSocket         *os.File
}

// Result is the helper's one line of JSON on stdout.
type Result struct {
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"` // errdefs.Kind of the error
	// Of create:
	Pid                int               `json:"pid,omitempty"`
	SharesPIDNamespace bool              `json:"shares_pid_namespace,omitempty"`
	CgroupPaths        map[string]string `json:"cgroup_paths,omitempty"`
	// DestroyNeedsHelper: the spec has poststop hooks or linux.intelRdt, which only libcontainer's destroy runs
	// or removes, so the monitor must not destroy the container itself.
	DestroyNeedsHelper bool `json:"destroy_needs_helper,omitempty"`
	// Of exec:
	ExitCode int `json:"exit_code,omitempty"`
	Signal   int `json:"signal,omitempty"`
}

// Err is the helper's error, with its sentinel.
func (r Result) Err() error {
	if r.Error == "" {
		return nil
	}
	return errdefs.FromKind(r.Error, r.Kind)
}

// command is the helper running op on container id; args are op's flags. It is killed when ctx ends.
func (r *Runtime) command(ctx context.Context, op, id string, args ...string) *exec.Cmd {
	a := []string{HelperArg, "-root", r.Root, "-id", id}
	if r.Systemd {
		a = append(a, "-systemd")
	}
	if b := r.Binary; b.Path != "" {
		a = append(a, "-binary", b.Path, "-binary-root", b.Root)
		for _, x := range b.ExtraArgs {
			a = append(a, "-binary-arg", x)
		}
	}
	a = append(append(a, args...), op)
	cmd := exec.CommandContext(ctx, r.Helper, a...)
	cmd.Stderr = os.Stderr // libcontainer's log lines go to the caller's log
	return cmd
}

// defaultHelperTimeout bounds one create, start, destroy or update helper: libcontainer takes well under a second
// for each, so a helper still running after a minute hangs (a stuck mount, a frozen cgroup) and is killed; the
// caller's undo or retry takes it from there. Exec helpers run as long as their process, bounded by their context.
const defaultHelperTimeout = time.Minute

// helperWaitDelay bounds the wait for the helper's stdout once it exited or was killed: a child that inherited it
// must not hold the caller.
const helperWaitDelay = 2 * time.Second

// Run runs op on container id with files as the helper's descriptors from HelperFirstFD on, and returns its
// result once it exited. The helper is killed after the helper timeout.
func (r *Runtime) Run(op, id string, files []*os.File, args ...string) (Result, error) {
	return r.run(context.Background(), op, id, files, args...)
}

// Timeout is the bound of one helper run but exec's; the monitor puts it on what it does in place of a helper too.
func (r *Runtime) Timeout() time.Duration {
	if r.HelperTimeout == 0 {
		return defaultHelperTimeout
	}
	return r.HelperTimeout
}

// run is Run under ctx as well as the helper timeout.
func (r *Runtime) run(ctx context.Context, op, id string, files []*os.File, args ...string) (Result, error) {
	timeout := r.Timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := r.command(ctx, op, id, args...)
	cmd.WaitDelay = helperWaitDelay
	cmd.ExtraFiles = files
	out := tail.New(helperOutputSize)
	cmd.Stdout = out
	err := cmd.Run()
	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("container %s: %s: helper timed out after %s: %w", id, op, timeout, ctx.Err())
	}
	return decodeResult(op, id, out.Bytes(), err)
}

// helperOutputSize bounds what is kept of a helper's stdout, whose last line is its result (a few hundred bytes): a
// runaway helper cannot grow berthd.
const helperOutputSize = 64 << 10

func decodeResult(op, id string, out []byte, waitErr error) (Result, error) {
	var res Result
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		if waitErr == nil {
			waitErr = err
		}
		return res, fmt.Errorf("container %s: %s: helper: %w", id, op, waitErr)
	}
	return res, res.Err()
}

// updateTimeout bounds an update's helper: with the systemd driver it waits on systemd over D-Bus.
var updateTimeout = time.Minute

// Update applies new resource limits to the created or running container id.
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	if res == nil {
		return errdefs.InvalidArgument("resources", "nil")
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("container %s: update: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), updateTimeout)
	defer cancel()
	_, err = r.run(ctx, OpUpdate, id, nil, "-resources", string(b))
	if ctx.Err() != nil {
		return fmt.Errorf("container %s: update: %w", id, errors.Join(err, context.Cause(ctx)))
	}
	return err
}

// Destroy kills what is left of container id and removes its cgroup and libcontainer state; a container
// without state (the usual case: its monitor destroyed it) costs no helper. The helper is killed when ctx ends.
func (r *Runtime) Destroy(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(r.Root, id)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := r.run(ctx, OpDestroy, id, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}
