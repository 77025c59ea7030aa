package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// execOutputCap bounds ExecSync's stdout and stderr together, so the response stays under the kubelet's gRPC
// message limit (16 MiB, k8s.io/cri-client's maxMsgSize) with room for the rest of the message. Like containerd,
// output past the cap is dropped, not an error: the command still runs to its end and its exit code comes back,
// and each truncated stream ends with execTruncatedMark so nobody mistakes it for the whole output.
const execOutputCap = 16<<20 - 4096

const execTruncatedMark = "\n[berth: output truncated: stdout and stderr are capped at 16 MiB together]\n"

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
	rec, ok := s.containers.Find(id)
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
	stdout, stderr := execOutputs()
	proc.Stdout, proc.Stderr = stdout, stderr
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
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.output(), Stderr: stderr.output(), ExitCode: int32(st.Code)}, nil
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

// execOutputs are the writers of one ExecSync's stdout and stderr, sharing one execOutputCap.
func execOutputs() (stdout, stderr *cappedBuffer) {
	budget := &execBudget{left: execOutputCap - 2*len(execTruncatedMark)}
	return &cappedBuffer{budget: budget}, &cappedBuffer{budget: budget}
}

// execBudget is what is left of execOutputCap for both streams of one exec; the helper writes them from two
// goroutines.
type execBudget struct {
	mu   sync.Mutex
	left int
}

// take reserves up to n bytes and returns how many it got.
func (b *execBudget) take(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.left)
	b.left -= n
	return n
}

// cappedBuffer keeps what its share of the budget allows and drops the rest without failing the writer, so
// the command never blocks or dies on a full pipe.
type cappedBuffer struct {
	budget    *execBudget
	buf       bytes.Buffer
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := b.budget.take(len(p))
	b.buf.Write(p[:n])
	if n < len(p) {
		b.truncated = true
	}
	return len(p), nil
}

// output is what was kept, marked when some was dropped (the mark's room was set aside in the budget).
func (b *cappedBuffer) output() []byte {
	if b.truncated {
		b.buf.WriteString(execTruncatedMark)
	}
	return b.buf.Bytes()
}
