package cri

import (
	"context"
	"fmt"
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

func (s *RuntimeServer) StartContainer(ctx context.Context, r *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	unlock := s.ctrLocks.lock(id)
	defer unlock()
	rec, ok := s.containers.Get(id)
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	if rec.State != ctrCreated {
		return nil, errdefs.FailedPrecondition("container %s is %s, not created", id, rec.State)
	}
	mon, err := s.monitorOf(rec.PodID)
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	if err := mon.Start(ctx, id); err != nil {
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	now := time.Now().UnixNano()
	// The process may already have exited and been recorded (onExit): keep that state, only note the start.
	if _, err := s.containers.Update(id, func(c *containerRecord) error {
		if c.StartedAt == 0 {
			c.StartedAt = now
		}
		if c.State == ctrCreated {
			c.State = ctrRunning
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	s.emitContainerEvent(id, rec.PodID, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtimeapi.StartContainerResponse{}, nil
}

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

func (s *RuntimeServer) stopContainer(ctx context.Context, id string, timeout time.Duration) error {
	unlock := s.ctrLocks.lock(id)
	defer unlock()
	rec, ok := s.containers.Get(id)
	if !ok || rec.State == ctrExited || rec.State == ctrCreating {
		return nil
	}
	log := Logger(ctx).With("container", id)
	if rec.State == ctrRunning && timeout > 0 {
		sig := syscall.SIGTERM
		if rec.StopSignal != "" {
			if parsed, err := parseSignal(rec.StopSignal); err == nil {
				sig = parsed
			}
		}
		if err := s.signal(id, sig, false); err != nil {
			log.Warn("stop signal failed; killing", "signal", sig, "err", err)
		} else if s.waitExit(ctx, id, timeout) {
			return nil
		}
	}
	if err := s.signal(id, syscall.SIGKILL, true); err != nil {
		log.Warn("kill failed", "err", err)
	}
	if s.waitExit(ctx, id, killWait) {
		return nil
	}
	// The monitor did not record the exit (it is gone, or the container never ran): record it here, so a stop
	// never hangs on a dead monitor.
	log.Warn("exit not recorded by the monitor; recording it", "state", rec.State)
	return s.markExited(id, &monitor.Exit{ExitCode: 137, Signal: "SIGKILL", FinishedAt: time.Now()}, "container stopped without a recorded exit")
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

// onExit records an exit the monitor wrote. It is called by the exit watcher and is idempotent.
func (s *RuntimeServer) onExit(id string) {
	rec, ok := s.containers.Get(id)
	if !ok || rec.State == ctrExited {
		return
	}
	e, err := monitor.ReadExit(rec.Bundle)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			s.log.Error("read container exit", "container", id, "err", err)
		}
		return
	}
	if err := s.markExited(id, e, ""); err != nil {
		s.log.Error("record container exit", "container", id, "err", err)
	}
}

func (s *RuntimeServer) markExited(id string, e *monitor.Exit, message string) error {
	return s.recordExit(id, e, exitReason(e), message)
}

// recordExit moves the container to exited with e, reason and message, unless it is there already.
func (s *RuntimeServer) recordExit(id string, e *monitor.Exit, reason, message string) error {
	exited := false
	_, err := s.containers.Update(id, func(c *containerRecord) error {
		if c.State == ctrExited {
			return nil
		}
		exited = true
		c.State = ctrExited
		c.ExitCode = int32(e.ExitCode)
		c.Reason = reason
		c.Message = message
		c.FinishedAt = e.FinishedAt.UnixNano()
		if c.StartedAt == 0 && !e.StartedAt.IsZero() {
			c.StartedAt = e.StartedAt.UnixNano()
		}
		return nil
	})
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err == nil {
		if rec, ok := s.containers.Get(id); ok {
			s.exits.unwatch(rec.Bundle)
			if exited {
				s.exits.announce()
				s.emitContainerEvent(id, rec.PodID, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
			}
		}
	}
	return err
}

// RemoveContainer removes a container in any state, killing it first; idempotent, OK for an unknown container.
func (s *RuntimeServer) RemoveContainer(ctx context.Context, r *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.removeContainer(cctx, id); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *RuntimeServer) removeContainer(ctx context.Context, id string) error {
	if err := s.stopContainer(ctx, id, 0); err != nil {
		return err
	}
	unlock := s.ctrLocks.lock(id)
	defer unlock()
	rec, ok := s.containers.Get(id)
	if !ok {
		return nil
	}
	s.exits.unwatch(rec.Bundle)
	if err := s.forgetContainer(ctx, rec); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	s.ctrNames.release(containerNameKey(rec.PodID, rec.Config.GetMetadata()), id)
	s.emitContainerEvent(id, rec.PodID, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	Logger(ctx).Info("container removed", "container", id)
	return nil
}

// monitorOf returns the running monitor of a pod.
func (s *RuntimeServer) monitorOf(podID string) (Monitor, error) {
	pod := s.sandboxPod(podID)
	if pod == nil {
		return nil, fmt.Errorf("pod %s has no runtime: %w", podID, errdefs.ErrFailedPrecondition)
	}
	mon := pod.Monitor()
	if mon == nil {
		return nil, fmt.Errorf("pod %s: monitor not running: %w", podID, errdefs.ErrUnavailable)
	}
	return mon, nil
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
