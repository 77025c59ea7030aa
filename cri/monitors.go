package cri

import (
	"context"
	"fmt"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
)

// reasonMonitorDied is the reason of a container whose pod monitor died: nothing held its stdio or could record its
// exit, so berthd killed it. Its exit code is 137, SIGKILL's, as containerd reports a task whose shim died.
const reasonMonitorDied = "MonitorDied"

// watchPod learns of the deaths of the pod's monitor and pause process from their pidfds (monitor.Client). Each
// wait is a goroutine parked in the Go runtime's netpoller, which holds every pidfd in its one epoll: no thread and
// no polling per pod. A wait ends with its process, with the Client's Close (the pod's removal) or with the server.
func (s *RuntimeServer) watchPod(id string, pod PodRuntime) {
	mon := pod.Monitor()
	if mon == nil {
		return
	}
	s.opts.Metrics.monitorWatched(1)
	go func() {
		err := mon.Wait(s.watchCtx)
		s.opts.Metrics.monitorWatched(-1) // the monitor exited, or its pod was removed (Close)
		if err == nil && !mon.Stopping() {
			s.onMonitorExit(id)
		}
	}()
	go func() {
		if mon.WaitPause(s.watchCtx) == nil && !mon.Stopping() {
			s.podLost(id, "its pause process exited")
		}
	}()
}

// onMonitorExit ends what a dead monitor leaves: the pod is not ready, and its created and running containers are
// killed and reported exited.
func (s *RuntimeServer) onMonitorExit(podID string) {
	s.podLost(podID, "its monitor died")
	for _, c := range s.podContainers(podID) {
		if c.State != ctrCreated && c.State != ctrRunning {
			continue
		}
		ctx, cancel := cleanupContext(context.Background())
		unlock, err := s.ctrLocks.Lock(ctx, c.ID)
		if err != nil {
			cancel()
			s.log.Error("end a container whose monitor died", "container", c.ID, "pod", podID, "err", err)
			continue
		}
		if rec, ok := s.containers.Get(c.ID); ok && (rec.State == ctrCreated || rec.State == ctrRunning) {
			if err := s.endLostContainer(rec, reasonMonitorDied, "the pod's monitor died; berthd killed the container"); err != nil {
				s.log.Error("record the exit of a container whose monitor died", "container", c.ID, "pod", podID, "err", err)
			}
		}
		unlock()
		cancel()
	}
}

// podLost reports a ready pod not ready, because of why.
func (s *RuntimeServer) podLost(id, why string) {
	changed := false
	rec, err := s.pods.Update(id, func(p *podRecord) error {
		changed = p.State == podReady
		if changed {
			return p.transition(podNotReady)
		}
		return nil
	})
	if err != nil || !changed {
		return
	}
	s.log.Warn("pod not ready: "+why, "pod", id)
	s.emitPodEvent(rec, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// endLostContainer ends a container that lost its monitor: nothing holds its stdio or will record its exit. An exit
// the monitor recorded before it died is kept; else berthd kills every process of the container, destroys it (the
// libcontainer helper: cgroup and state) and records the exit itself. Its rootfs stays for RemoveContainer.
func (s *RuntimeServer) endLostContainer(rec containerRecord, reason, message string) error {
	if _, err := monitor.ReadExit(rec.Bundle); err == nil {
		s.onExit(rec.ID)
		return nil
	}
	log := s.log.With("container", rec.ID, "pod", rec.PodID)
	log.Warn("container lost its monitor; killing it", "reason", reason)
	if err := s.signal(rec.ID, syscall.SIGKILL, true); err != nil {
		log.Debug("kill", "err", err)
	}
	ctx, cancel := cleanupContext(context.Background())
	defer cancel()
	if err := s.opts.Containers.Destroy(ctx, rec.ID); err != nil {
		log.Error("destroy container", "err", err)
	}
	return s.recordExit(rec.ID, &monitor.Exit{ExitCode: 137, Signal: "SIGKILL", FinishedAt: time.Now()}, reason, message)
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
