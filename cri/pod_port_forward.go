package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// portForwardLinger is how long the pod's side of a forwarded connection may stay silent, once the client
// has finished sending, before the connection is closed: long enough for an answer, short enough that a
// server keeping an idle connection open does not keep the session forever.
const portForwardLinger = 5 * time.Second

// PortForward returns the streaming server's URL for forwarding TCP ports of a ready pod. The ports come with
// each stream the client opens; those of the request are checked only.
func (s *RuntimeServer) PortForward(ctx context.Context, r *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must be set")
	}
	for _, p := range r.GetPort() {
		if p < 1 || p > 65535 {
			return nil, errdefs.InvalidArgument("port", "%d is outside 1..65535", p)
		}
	}
	rec, ok := s.pods.Find(r.GetPodSandboxId())
	if !ok {
		return nil, errdefs.NotFound("pod sandbox", r.GetPodSandboxId())
	}
	if rec.State != podReady {
		return nil, errdefs.FailedPrecondition("port-forward to pod %s: it is %s, not ready", rec.ID, rec.State)
	}
	srv, err := s.streamServer()
	if err != nil {
		return nil, err
	}
	r = proto.CloneOf(r)
	r.PodSandboxId = rec.ID
	return srv.GetPortForward(r)
}

// PortForward connects to port on the pod's loopback from inside its network namespace (berthd itself, no
// helper process) and copies between that connection and the client's stream.
func (rt streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	pod := rt.s.sandboxPod(podID)
	if pod == nil {
		return errdefs.FailedPrecondition("port-forward to pod %s: it has no runtime", podID)
	}
	conn, err := pod.DialPort(ctx, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	return proxy(ctx, conn, stream, portForwardLinger)
}

// proxy copies both ways between conn and the client's stream until the pod's side ends. When the client
// ends its side first, conn is half-closed and the pod's side has until it stays silent for linger to finish
// answering. The copy from the stream may outlive proxy: it ends when the caller closes the session.
func proxy(ctx context.Context, conn net.Conn, stream io.ReadWriter, linger time.Duration) error {
	fromPod := &idleReader{conn: conn}
	toClient := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, fromPod)
		toClient <- err
	}()
	toPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		toPod <- err
	}()
	select {
	case err := <-toClient:
		return portForwardErr(err)
	case err := <-toPod:
		if err != nil {
			return fmt.Errorf("copy to pod: %w", err)
		}
		if hc, ok := conn.(interface{ CloseWrite() error }); ok {
			hc.CloseWrite()
		}
		fromPod.linger(linger)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-toClient:
		return portForwardErr(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// portForwardErr is the end of the copy from the pod: its closing or falling silent ends the session well.
func portForwardErr(err error) error {
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("copy from pod: %w", err)
}

// idleReader reads conn; once linger was called, a read fails when conn stays silent that long.
type idleReader struct {
	conn net.Conn
	idle atomic.Int64 // time.Duration; 0 waits forever
}

func (r *idleReader) Read(p []byte) (int, error) {
	if d := time.Duration(r.idle.Load()); d > 0 {
		r.conn.SetReadDeadline(time.Now().Add(d))
	}
	return r.conn.Read(p)
}

// linger starts the idle limit, for the read in progress too.
func (r *idleReader) linger(d time.Duration) {
	r.idle.Store(int64(d))
	r.conn.SetReadDeadline(time.Now().Add(d))
}
