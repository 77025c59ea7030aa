package cri

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// Exec returns the streaming server's URL for running a command in a running container. The command runs
// when the client connects (streamRuntime.Exec).
func (s *RuntimeServer) Exec(ctx context.Context, r *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := validateStreams(r.GetContainerId(), r.GetTty(), r.GetStdin(), r.GetStdout(), r.GetStderr()); err != nil {
		return nil, err
	}
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument("cmd", "must not be empty")
	}
	rec, ok := s.containers.Find(r.GetContainerId())
	if !ok {
		return nil, errdefs.NotFound("container", r.GetContainerId())
	}
	if rec.State != ctrRunning {
		return nil, errdefs.FailedPrecondition("exec in container %s: it is %s, not running", rec.ID, rec.State)
	}
	srv, err := s.streamServer()
	if err != nil {
		return nil, err
	}
	r = proto.CloneOf(r)
	r.ContainerId = rec.ID
	return srv.GetExec(r)
}

// validateStreams checks the stream flags of an exec or attach request as api.proto states them.
func validateStreams(id string, tty, stdin, stdout, stderr bool) error {
	switch {
	case id == "":
		return errdefs.InvalidArgument("container_id", "must be set")
	case tty && stderr:
		return errdefs.InvalidArgument("stderr", "must be false with tty: a terminal has one output stream")
	case !stdin && !stdout && !stderr:
		return errdefs.InvalidArgument("stdin, stdout, stderr", "one of them must be true")
	}
	return nil
}

// Exec runs cmd in the container in an exec helper (libcontainer), with the container's user, environment, working
// directory, namespaces and cgroup, until it exits or ctx ends (the client went away), which kills it. A
// non-zero exit is an exec.ExitError, which the streaming server reports to the client as the exit code.
func (rt streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize) error {
	rec, ok := rt.s.containers.Get(id)
	if !ok {
		return errdefs.NotFound("container", id)
	}
	if rec.State != ctrRunning {
		return errdefs.FailedPrecondition("exec in container %s: it is %s, not running", id, rec.State)
	}
	proc, err := execProcess(rec, cmd)
	if err != nil {
		return err
	}
	proc.Terminal = tty
	// Interface values are assigned only when set: a nil stream must stay a nil io.Reader/io.Writer.
	if in != nil {
		proc.Stdin = in
	}
	if out != nil {
		proc.Stdout = out
	}
	if errOut != nil {
		proc.Stderr = errOut
	}
	if tty {
		proc.Resize = terminalSizes(ctx, resize, func(sz remotecommand.TerminalSize) ctr.TerminalSize {
			return ctr.TerminalSize{Width: sz.Width, Height: sz.Height}
		})
	}
	st, err := rt.s.opts.Containers.Exec(ctx, id, proc)
	if err != nil && ctx.Err() != nil {
		// The client left, or berthd is stopping: the process was killed and no one is left to tell.
		rt.s.log.Info("exec ended with its session", "container", id, "cmd", cmd[0], "reason", context.Cause(ctx))
		return nil
	}
	if err != nil {
		return err
	}
	if st.Code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", st.Code), Code: st.Code}
	}
	return nil
}
