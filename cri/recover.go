package cri

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthcri/berth/oci/monitor"
)

// Recover reconciles the records with what runs on the host when berthd starts. It assumes:
//   - a record is written before anything it describes is made, and deleted after all of it is gone, so what the
//     host holds without a record is an orphan to remove, and a record in a creating state is a creation that a
//     killed berthd left halfway: it is rolled back;
//   - monitors outlive berthd: a pod whose monitor answers is running, its containers' exits while berthd was down
//     are in their exit.json files;
//   - a pod whose runtime dir is gone (the state dir is tmpfs: a reboot) or whose monitor is dead is not ready, and
//     its containers that have no recorded exit are reported exited;
//   - image references (image.Service users) are taken before the container record is written, so the container
//     records are the truth: references of containers without one are dropped (releaseLostImageUsers).
//
// One object that cannot be recovered (a rollback whose CNI DEL or unmount fails) never stops berthd: it is logged
// with its id and keeps its record, so that it stays visible (a pod not ready, a container exited) and
// RemovePodSandbox or RemoveContainer retries its undo. Only a state dir that cannot be read at all fails Recover.
func (s *RuntimeServer) Recover(ctx context.Context) error {
	recovered, err := s.opts.Sandboxes.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recover pods: %w", err)
	}
	runtimes := map[string]RecoveredPod{}
	for _, rp := range recovered {
		runtimes[rp.Pod.ID()] = rp
		if _, ok := s.pods.Get(rp.Pod.ID()); !ok {
			s.log.Info("recover: removing pod runtime without a record", "pod", rp.Pod.ID())
			if err := rp.Pod.Remove(ctx); err != nil {
				s.log.Error("recover: remove orphan pod", "pod", rp.Pod.ID(), "err", err)
			}
		}
	}
	for _, rec := range s.pods.List() {
		rp, live := runtimes[rec.ID]
		s.recoverPod(ctx, rec, rp, live)
	}
	for _, rec := range s.containers.List() {
		// Bounded per container: berthd's start must not hang on one monitor that accepts and never answers.
		cctx, cancel := cleanupContext(ctx)
		s.recoverContainer(cctx, rec)
		cancel()
	}
	// Watched once their containers are recovered: a monitor that dies from now on is handled by onMonitorExit.
	for id, rp := range runtimes {
		if _, ok := s.pods.Get(id); ok {
			s.watchPod(id, rp.Pod)
		}
	}
	s.releaseLostImageUsers()
	s.collectNetworks(ctx)
	return nil
}

// collectNetworks deletes the network attachments of pods that are not ready: their Stop or Remove did not finish
// it, or the attachment was left by a pod whose record is gone. It runs before berthd serves, so that no pod is set
// up meanwhile; a failure is logged, and the next start tries again.
func (s *RuntimeServer) collectNetworks(ctx context.Context) {
	if s.opts.NetworkGC == nil {
		return
	}
	var live []string
	for _, rec := range s.pods.List() {
		if rec.State == podReady {
			live = append(live, rec.ID)
		}
	}
	if err := s.opts.NetworkGC(ctx, live); err != nil {
		s.log.Warn("recover: pod network attachments of pods that are gone were not all deleted", "err", err)
	}
}

func (s *RuntimeServer) recoverPod(ctx context.Context, rec podRecord, rp RecoveredPod, live bool) {
	log := s.log.With("pod", rec.ID)
	if rec.State == podCreating {
		log.Info("recover: rolling back a pod creation that did not finish")
		var pod PodRuntime
		if live {
			pod = rp.Pod
		}
		// abandonPod logs a failed rollback and keeps the pod; its error is for a caller, and there is none.
		s.abandonPod(ctx, log, rec, pod, errors.New("berthd stopped while it created the pod"))
		return
	}
	if live {
		s.sandbox[rec.ID] = rp.Pod
	}
	if (!live || rp.Err != nil) && rec.State == podReady {
		reason := "its runtime dir is gone"
		if live {
			reason = rp.Err.Error()
		}
		log.Warn("recover: pod not ready", "reason", reason)
		if _, err := s.pods.Update(rec.ID, func(p *podRecord) error { return p.transition(podNotReady) }); err != nil {
			log.Error("recover: record pod not ready", "err", err)
		}
	}
	s.podNames.restore(podNameKey(rec.Config.GetMetadata()), rec.ID)
}

// keepHalfMadePod keeps a pod whose creation failed and whose rollback failed too: listed not ready (the kubelet's
// garbage collection removes such pods), its runtime known, so that RemovePodSandbox runs the undo again.
func (s *RuntimeServer) keepHalfMadePod(rec podRecord, pod PodRuntime) {
	if pod != nil { // nil after a panic: recovery at the next start finds what is left by the pod dir
		s.mu.Lock()
		s.sandbox[rec.ID] = pod
		s.mu.Unlock()
	}
	if _, err := s.pods.Update(rec.ID, func(p *podRecord) error { return p.transition(podNotReady) }); err != nil {
		s.log.Error("record a half-made pod not ready", "pod", rec.ID, "err", err)
	}
	s.podNames.restore(podNameKey(rec.Config.GetMetadata()), rec.ID)
}

func (s *RuntimeServer) recoverContainer(ctx context.Context, rec containerRecord) {
	log := s.log.With("container", rec.ID, "pod", rec.PodID)
	if _, ok := s.pods.Get(rec.PodID); !ok || rec.State == ctrCreating {
		log.Info("recover: rolling back a container", "state", rec.State)
		s.rollbackContainer(ctx, rec, s.containerStages(), true) // logs a failure and keeps the container
		return
	}
	s.ctrNames.restore(containerNameKey(rec.PodID, rec.Config.GetMetadata()), rec.ID)
	if rec.State == ctrExited {
		return
	}
	if _, err := monitor.ReadExit(rec.Bundle); err == nil {
		s.onExit(rec.ID)
		return
	}
	mon, err := s.monitorOf(rec.PodID)
	if err == nil {
		states, serr := mon.State(ctx)
		if serr == nil {
			for _, st := range states {
				if st.ID == rec.ID {
					if st.Status == monitor.StatusRunning && rec.State == ctrCreated {
						if _, err := s.containers.Update(rec.ID, func(c *containerRecord) error {
							c.StartedAt = st.StartedAt.UnixNano()
							return c.transition(ctrRunning)
						}); err != nil {
							log.Error("recover: record the container running", "err", err)
						}
					}
					if err := s.exits.watch(rec.ID, rec.Bundle); err != nil {
						log.Error("recover: watch the container's exit", "err", err)
					}
					return
				}
			}
		}
		err = errors.Join(serr, errors.New("the monitor does not know the container"))
	}
	// Nobody holds the container's stdio or will record its exit: end it and say so, as for a monitor that dies
	// while berthd runs.
	log.Warn("recover: container lost its monitor", "err", err)
	if err := s.endLostContainer(rec, reasonMonitorDied, "berthd found the container without a running monitor: "+err.Error()); err != nil {
		log.Error("recover: record the container exited", "err", err)
	}
}

// keepHalfMadeContainer keeps a container whose rollback failed, recorded exited so that it is listed and
// RemoveContainer (or RemovePodSandbox) retries the clean-up.
func (s *RuntimeServer) keepHalfMadeContainer(rec containerRecord, cause error) error {
	s.ctrNames.restore(containerNameKey(rec.PodID, rec.Config.GetMetadata()), rec.ID)
	return s.markExited(rec.ID, &monitor.Exit{ExitCode: 255, FinishedAt: time.Now()},
		fmt.Sprintf("its creation did not finish and its clean-up failed: %v", cause))
}

// releaseLostImageUsers drops the image references that no container record accounts for: a CreateContainer killed
// after Acquire and before writing its record took them, and nothing else would ever release them.
func (s *RuntimeServer) releaseLostImageUsers() {
	known := map[string]bool{}
	for _, c := range s.containers.List() {
		known[c.ID], known[imageVolumeUser(c.ID)] = true, true
	}
	dropped, err := s.opts.Images.KeepUsers(func(user string) bool { return known[user] })
	if len(dropped) > 0 {
		s.log.Info("recover: dropped image references of containers without a record", "containers", dropped)
	}
	if err != nil {
		s.log.Error("recover: drop image references", "err", err)
	}
}
