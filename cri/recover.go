package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
)

// Recover reconciles the records with what runs on the host when berthd starts. It assumes:
//   - a record is written before anything it describes is made, and deleted after all of it is gone, so what the
//     host holds without a record is an orphan to remove, and a record in a creating state is a creation that a
//     killed berthd left halfway: it is rolled back;
//   - monitors outlive berthd: a pod whose monitor answers is running, its containers' exits while berthd was down
//     are in their exit.json files;
//   - a pod whose runtime dir is gone (the state dir is tmpfs: a reboot) or whose monitor is dead is not ready, and
//     its containers that have no recorded exit are reported exited.
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
		if rec.State == podCreating {
			s.log.Info("recover: rolling back a pod creation that did not finish", "pod", rec.ID)
			if live {
				if err := rp.Pod.Remove(ctx); err != nil {
					return fmt.Errorf("recover pod %s: %w", rec.ID, err)
				}
			}
			if err := s.pods.Delete(rec.ID); err != nil {
				return fmt.Errorf("recover pod %s: %w", rec.ID, err)
			}
			continue
		}
		if live {
			s.sandbox[rec.ID] = rp.Pod
		}
		if (!live || rp.Err != nil) && rec.State == podReady {
			reason := "its runtime dir is gone"
			if live {
				reason = rp.Err.Error()
			}
			s.log.Warn("recover: pod not ready", "pod", rec.ID, "reason", reason)
			if _, err := s.pods.Update(rec.ID, func(p *podRecord) error { p.State = podNotReady; return nil }); err != nil {
				return fmt.Errorf("recover pod %s: %w", rec.ID, err)
			}
		}
		s.podNames.restore(podNameKey(rec.Config.GetMetadata()), rec.ID)
	}
	for _, rec := range s.containers.List() {
		if err := s.recoverContainer(ctx, rec); err != nil {
			return err
		}
	}
	// Watched once their containers are recovered: a monitor that dies from now on is handled by onMonitorExit.
	for id, rp := range runtimes {
		if _, ok := s.pods.Get(id); ok {
			s.watchPod(id, rp.Pod)
		}
	}
	return nil
}

func (s *RuntimeServer) recoverContainer(ctx context.Context, rec containerRecord) error {
	log := s.log.With("container", rec.ID, "pod", rec.PodID)
	if _, ok := s.pods.Get(rec.PodID); !ok || rec.State == ctrCreating {
		log.Info("recover: rolling back a container", "state", rec.State)
		return s.forgetContainer(ctx, rec)
	}
	s.ctrNames.restore(containerNameKey(rec.PodID, rec.Config.GetMetadata()), rec.ID)
	if rec.State == ctrExited {
		return nil
	}
	if _, err := monitor.ReadExit(rec.Bundle); err == nil {
		s.onExit(rec.ID)
		return nil
	}
	mon, err := s.monitorOf(rec.PodID)
	if err == nil {
		states, serr := mon.State(ctx)
		if serr == nil {
			for _, st := range states {
				if st.ID == rec.ID {
					if st.Status == monitor.StatusRunning && rec.State == ctrCreated {
						_, _ = s.containers.Update(rec.ID, func(c *containerRecord) error {
							c.State, c.StartedAt = ctrRunning, st.StartedAt.UnixNano()
							return nil
						})
					}
					return s.exits.watch(rec.ID, rec.Bundle)
				}
			}
		}
		err = errors.Join(serr, errors.New("the monitor does not know the container"))
	}
	// Nobody holds the container's stdio or will record its exit: end it and say so, as for a monitor that dies
	// while berthd runs.
	log.Warn("recover: container lost its monitor", "err", err)
	return s.endLostContainer(rec, reasonMonitorDied, "berthd found the container without a running monitor: "+err.Error())
}

// forgetContainer removes whatever a stopped (or never started) container left on the host, then its record. It
// works with or without the pod's monitor and is idempotent.
func (s *RuntimeServer) forgetContainer(ctx context.Context, rec containerRecord) error {
	if mon, err := s.monitorOf(rec.PodID); err == nil {
		if err := mon.Remove(ctx, rec.ID); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
			return fmt.Errorf("clean up container %s: %w", rec.ID, err)
		}
	}
	if err := s.opts.Containers.Destroy(ctx, rec.ID); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("clean up container %s: %w", rec.ID, err)
	}
	if err := errors.Join(s.unmountImageVolumes(rec.ImageVolumes), s.opts.Images.Unmount(filepath.Join(rec.Bundle, "rootfs"))); err != nil {
		return fmt.Errorf("clean up container %s: %w", rec.ID, err)
	}
	if err := errors.Join(os.RemoveAll(rec.Bundle), os.RemoveAll(filepath.Join(s.opts.RootDir, "containers", rec.ID))); err != nil {
		return fmt.Errorf("clean up container %s: %w", rec.ID, err)
	}
	if rec.ImageID != "" {
		if err := s.opts.Images.Release(rec.ImageID, rec.ID); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("clean up container %s: %w", rec.ID, err)
		}
	}
	if err := s.releaseImageVolumes(rec.ID, rec.ImageVolumes); err != nil {
		return fmt.Errorf("clean up container %s: %w", rec.ID, err)
	}
	return s.containers.Delete(rec.ID)
}
