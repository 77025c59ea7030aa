package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// execOutputCap bounds each of ExecSync's captured streams, as the kubelet's probe output is bounded.
const execOutputCap = 16 << 20

// ExecSync runs a command in a running container and returns its output. berthd runs it in an exec helper (not
// the monitor): the call's lifetime is the process's, and a timeout kills the whole exec process tree.
func (s *RuntimeServer) ExecSync(ctx context.Context, r *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument("cmd", "must not be empty")
	}
	rec, ok := s.findContainer(id)
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	if rec.State != ctrRunning {
		return nil, errdefs.FailedPrecondition("container %s is %s, not running", rec.ID, rec.State)
	}
	proc, err := execProcess(rec, r.GetCmd())
	if err != nil {
		return nil, err
	}
	var stdout, stderr cappedBuffer
	proc.Stdout, proc.Stderr = &stdout, &stderr
	if t := r.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	st, err := s.opts.Containers.Exec(ctx, rec.ID, proc)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && r.GetTimeout() > 0 {
			return nil, fmt.Errorf("exec in %s: command timed out after %ds: %w", rec.ID, r.GetTimeout(), context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("exec in %s: %w", rec.ID, err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(st.Code)}, nil
}

// execProcess is an exec'd process with the container's user, environment and working directory.
func execProcess(rec containerRecord, args []string) (ctr.ExecProcess, error) {
	b, err := os.ReadFile(filepath.Join(rec.Bundle, "config.json"))
	if err != nil {
		return ctr.ExecProcess{}, fmt.Errorf("exec in %s: %w", rec.ID, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil || spec.Process == nil {
		return ctr.ExecProcess{}, fmt.Errorf("exec in %s: bad spec: %v", rec.ID, err)
	}
	p := spec.Process
	return ctr.ExecProcess{Args: args, Env: p.Env, Cwd: p.Cwd, UID: p.User.UID, GID: p.User.GID,
		AdditionalGids: p.User.AdditionalGids}, nil
}

// cappedBuffer keeps the first execOutputCap bytes written to it and drops the rest without failing the writer.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := execOutputCap - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
