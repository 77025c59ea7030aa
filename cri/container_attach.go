package cri

import (
	"context"
	"io"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
)

// Attach returns the streaming server's URL for attaching to a container's main process, which its pod
// monitor serves (streamRuntime.Attach).
func (s *RuntimeServer) Attach(ctx context.Context, r *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := validateStreams(r.GetContainerId(), r.GetTty(), r.GetStdin(), r.GetStdout(), r.GetStderr()); err != nil {
		return nil, err
	}
	rec, ok := s.containers.Find(r.GetContainerId())
	if !ok {
		return nil, errdefs.NotFound("container", r.GetContainerId())
	}
	if rec.State != ctrCreated && rec.State != ctrRunning {
		return nil, errdefs.FailedPrecondition("attach to container %s: it is %s", rec.ID, rec.State)
	}
	srv, err := s.streamServer()
	if err != nil {
		return nil, err
	}
	r = proto.CloneOf(r)
	r.ContainerId = rec.ID
	return srv.GetAttach(r)
}

// Attach streams the container's output to the client and the client's input to the container until the
// container exits or the client leaves. The container's config decides, not the request: without stdin in
// the config the client's input is dropped, and with a terminal all output is stdout. Several clients may
// attach at once; each sees all output. With stdin_once, the container's stdin closes when the first
// client attached with stdin closes its input or leaves (the monitor's rule).
func (rt streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, _ bool,
	resize <-chan remotecommand.TerminalSize) error {
	rec, ok := rt.s.containers.Get(id)
	if !ok {
		return errdefs.NotFound("container", id)
	}
	mon, err := rt.s.monitorOf(rec.PodID)
	if err != nil {
		return err
	}
	var (
		stdin          io.Reader
		stdout, stderr io.Writer
		sizes          <-chan monitor.Size
	)
	if in != nil && rec.Config.GetStdin() {
		stdin = in
	}
	if out != nil {
		stdout = out
	}
	if errOut != nil && !rec.Config.GetTty() {
		stderr = errOut
	}
	if rec.Config.GetTty() {
		sizes = terminalSizes(ctx, resize, func(sz remotecommand.TerminalSize) monitor.Size {
			return monitor.Size{Width: sz.Width, Height: sz.Height}
		})
	}
	if err := mon.Attach(ctx, id, stdin, stdout, stderr, sizes); err != nil && ctx.Err() == nil {
		return err
	}
	return nil // the container exited, or the client left
}
