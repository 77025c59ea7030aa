package cri

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
)

// StopContainer sends the stop signal, waits up to the timeout, then kills every process of the container. It is
// idempotent and succeeds for an unknown container.
func (s *RuntimeServer) StopContainer(ctx context.Context, r *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	if err := s.stopContainer(ctx, id, time.Duration(r.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// killWait bounds the wait for a SIGKILLed container's exit to be recorded before berthd records it itself.
const killWait = 10 * time.Second

// stopContainer sends the stop signal and waits up to timeout for the exit, then kills. The container's lock is held
// only while signalling and recording, never across the waits: a Stop with a long grace period must not hold up a
// later Stop with timeout 0 (which kills at once, as containerd lets it), a RemoveContainer or a StopPodSandbox. The
// lock is waited for under ctx (the caller's deadline); the waits for the exit end with ctx too.
func (s *RuntimeServer) stopContainer(ctx context.Context, id string, timeout time.Duration) error {
	log := Logger(ctx).With("container", id)
	if timeout > 0 {
		signalled, done, err := s.sendStopSignal(ctx, id, log)
		if err != nil || done {
			return err
		}
		if signalled && s.waitExit(ctx, id, timeout) {
			return nil
		}
	}
	unlock, err := s.ctrLocks.Lock(ctx, id)
	if err != nil {
		return err
	}
	rec, ok := s.containers.Get(id)
	if !ok || rec.State == ctrExited || rec.State == ctrCreating {
		unlock()
		return nil
	}
	if err := s.signal(id, syscall.SIGKILL, true); err != nil {
		log.Warn("kill failed", "err", err)
	}
	unlock()
	// Not the caller's context: a kill whose exit was not awaited would be recorded below as if the monitor missed it.
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if s.waitExit(cctx, id, killWait) {
		return nil
	}
	// The monitor did not record the exit (it is gone, or the container never ran): record it here, so a stop
	// never hangs on a dead monitor.
	log.Warn("exit not recorded by the monitor; recording it", "state", rec.State)
	return s.markExited(id, &monitor.Exit{ExitCode: 137, Signal: "SIGKILL", FinishedAt: time.Now()}, "container stopped without a recorded exit")
}

// sendStopSignal sends a running container its stop signal, under its lock. done reports that there is nothing to
// stop (no such container, or exited); signalled is false when the container is not running or the signal failed:
// the caller kills at once then.
func (s *RuntimeServer) sendStopSignal(ctx context.Context, id string, log *slog.Logger) (signalled, done bool, err error) {
	unlock, err := s.ctrLocks.Lock(ctx, id)
	if err != nil {
		return false, false, err
	}
	defer unlock()
	rec, ok := s.containers.Get(id)
	if !ok || rec.State == ctrExited || rec.State == ctrCreating {
		return false, true, nil
	}
	if rec.State != ctrRunning {
		return false, false, nil
	}
	sig := syscall.SIGTERM
	if rec.StopSignal != "" {
		if parsed, err := parseSignal(rec.StopSignal); err == nil {
			sig = parsed
		}
	}
	if err := s.signal(id, sig, false); err != nil {
		log.Warn("stop signal failed; killing", "signal", sig, "err", err)
		return false, false, nil
	}
	return true, false, nil
}

// signal signals the container's init (all=false) or every process of its cgroup, from its libcontainer state:
// it needs no monitor.
func (s *RuntimeServer) signal(id string, sig syscall.Signal, all bool) error {
	c, err := s.opts.Containers.Load(id)
	if err != nil {
		return err
	}
	return c.Signal(sig, all)
}

// waitExit waits until the container is recorded as exited, at most d.
func (s *RuntimeServer) waitExit(ctx context.Context, id string, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		exited := s.exits.nextExit() // taken before the check, so that an exit between the two is not missed
		rec, ok := s.containers.Get(id)
		if !ok || rec.State == ctrExited {
			return true
		}
		// The exit event may race the watch; the file is the truth.
		if _, err := os.Stat(filepath.Join(rec.Bundle, monitor.ExitFileName)); err == nil {
			s.onExit(id)
			continue
		}
		select {
		case <-exited:
		case <-tick.C:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// parseSignal reads an image's StopSignal: "SIGWINCH", "WINCH" or "28".
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
