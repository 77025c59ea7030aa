package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/oci/specgen"
)

// A container is made in named stages, as a pod is (sandbox/manager.go). Each stage's undo works from the
// container's record alone and is idempotent: it works whether do ran fully, partly or not at all, in this process
// or in a berthd that died. So one undo path, undoContainer, serves a failed CreateContainer (the stages done, the
// failed one included), RemoveContainer and recovery (all of them). The record itself is written by a stage and
// deleted by undoContainer once every undo succeeded: a failed undo keeps it, so the container stays visible for
// the kubelet's next RemoveContainer and for recovery.
//
// Another area's step (CDI devices into the spec, an NRI adjustment, the runtime handler) is one line of the table.
type ctrStage struct {
	name string
	do   func(ctx context.Context, b *ctrBuild) error
	undo func(ctx context.Context, rec containerRecord) error // nil: a later undo (the bundle's removal) covers it
}

// ctrBuild is one creation's input and what its stages made so far.
type ctrBuild struct {
	req      *runtimeapi.CreateContainerRequest
	podRec   podRecord
	pod      PodRuntime
	mon      Monitor
	rec      containerRecord // filled by the stages; on disk from the record stage on
	recorded bool            // the record stage succeeded
	img      image.Image
	user     specs.User
	spec     *specs.Spec
}

// stageRecord is the stage that writes the record; undoContainer deletes the record last.
const stageRecord = "record"

func (s *RuntimeServer) containerStages() []ctrStage {
	return []ctrStage{
		{"image", s.acquireImage, s.releaseImage},
		{"image volumes", s.takeImageVolumes, func(_ context.Context, rec containerRecord) error {
			return s.releaseImageVolumes(rec.ID, rec.ImageVolumes)
		}},
		{stageRecord, s.writeContainerRecord, nil},
		{"rootfs", s.mountRootfs, s.removeRootfs},
		{"image volume mounts", s.mountVolumes, func(_ context.Context, rec containerRecord) error {
			return s.unmountImageVolumes(rec.ImageVolumes)
		}},
		{"spec", s.generateSpec, nil},
		{"handler", func(_ context.Context, b *ctrBuild) error {
			s.fitSpecToHandler(b.spec, b.podRec.RuntimeHandler, b.podRec.Config.GetAnnotations())
			return nil
		}, nil},
		{"cdi", func(ctx context.Context, b *ctrBuild) error { return s.injectCDI(ctx, b.spec, b.req.GetConfig()) }, nil},
		{"nri", s.nriAdjust, nil}, // plugins may adjust the spec; nriCreated tells them of a failure
		{"apparmor", func(ctx context.Context, b *ctrBuild) error {
			return s.ensureAppArmor(ctx, b.spec.Process.ApparmorProfile)
		}, nil},
		{"bundle", writeBundleConfig, nil},
		{"monitor", s.createInMonitor, s.removeFromMonitor},
		{"exit watch", func(_ context.Context, b *ctrBuild) error { return s.exits.watch(b.rec.ID, b.rec.Bundle) },
			func(_ context.Context, rec containerRecord) error { s.exits.unwatch(rec.Bundle); return nil }},
		{"created", s.markCreated, nil},
	}
}

// runContainerStages makes the container of b; on failure it undoes the stages done.
func (s *RuntimeServer) runContainerStages(ctx context.Context, b *ctrBuild) error {
	stages := s.containerStages()
	for i, st := range stages {
		if err := s.runContainerStage(ctx, st, b); err != nil {
			err = fmt.Errorf("create container %s: %s: %w", b.rec.ID, st.name, err)
			if rbErr := s.rollbackContainer(ctx, b.rec, stages[:i+1], b.recorded); rbErr != nil {
				// The cause keeps its code; the undo's error is in the text and the log.
				return fmt.Errorf("%w (and its rollback failed: %v)", err, rbErr)
			}
			return err
		}
	}
	return nil
}

// runContainerStage does stage st. A panic in it is an error wrapping errdefs.ErrInternal, so that the stages done
// are undone as after any failed stage.
func (s *RuntimeServer) runContainerStage(ctx context.Context, st ctrStage, b *ctrBuild) (err error) {
	defer func() {
		if r := recover(); r != nil {
			Logger(ctx).Error("panic in a container stage", "container", b.rec.ID, "pod", b.podRec.ID, "stage", st.name,
				"panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%v: %w", r, errdefs.ErrInternal)
		}
	}()
	start := time.Now()
	if err := st.do(ctx, b); err != nil {
		return err
	}
	// per-stage times, for finding where a container's create goes (hack/bench/profile.sh)
	Logger(ctx).Debug("container stage done", "container", b.rec.ID, "stage", st.name, "took", time.Since(start))
	return nil
}

// rollbackContainer undoes stages of rec (those a failed create did, or all of them), under a cleanup context. When
// an undo fails, it logs the error with the ids and keeps a recorded container, exited (keepHalfMadeContainer).
func (s *RuntimeServer) rollbackContainer(ctx context.Context, rec containerRecord, stages []ctrStage, recorded bool) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	err := s.undoContainer(cctx, rec, stages, recorded)
	if err == nil {
		return nil
	}
	log := s.logger(ctx).With("container", rec.ID, "pod", rec.PodID)
	if !recorded {
		// Only image references are taken before the record: recovery's releaseLostImageUsers drops them.
		log.Error("container rollback failed before its record was written", "err", err)
		return err
	}
	log.Error("container rollback failed; it stays, exited, for RemoveContainer to finish", "err", err)
	if kerr := s.keepHalfMadeContainer(rec, err); kerr != nil {
		log.Error("record a half-made container exited", "err", kerr)
		return errors.Join(err, kerr)
	}
	return err
}

// undoContainer runs the undos of stages in reverse order, then deletes the record when there is one. It stops at
// the first failure, so that what the earlier undos need (the rootfs mounted for its unmount, the record) stays for
// the retry.
func (s *RuntimeServer) undoContainer(ctx context.Context, rec containerRecord, stages []ctrStage, recorded bool) error {
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i].undo == nil {
			continue
		}
		start := time.Now()
		if err := stages[i].undo(ctx, rec); err != nil {
			return fmt.Errorf("clean up container %s: undo %s: %w", rec.ID, stages[i].name, err)
		}
		Logger(ctx).Debug("container stage undone", "container", rec.ID, "stage", stages[i].name, "took", time.Since(start))
	}
	if !recorded {
		return nil
	}
	if err := s.containers.Delete(rec.ID); err != nil {
		return fmt.Errorf("clean up container %s: %w", rec.ID, err)
	}
	return nil
}

// forgetContainer removes whatever a stopped (or never started) container left on the host, then its record: every
// stage undone. It works with or without the pod's monitor and is idempotent.
func (s *RuntimeServer) forgetContainer(ctx context.Context, rec containerRecord) error {
	return s.undoContainer(ctx, rec, s.containerStages(), true)
}

func (s *RuntimeServer) acquireImage(_ context.Context, b *ctrBuild) error {
	ref := b.req.GetConfig().GetImage().GetImage()
	img, err := s.opts.Images.Acquire(ref, b.rec.ID)
	if err != nil {
		return fmt.Errorf("image %q: %w", ref, err)
	}
	b.img, b.rec.ImageID = img, img.ID
	crashPoint("create-container:image-acquired")
	return nil
}

func (s *RuntimeServer) releaseImage(_ context.Context, rec containerRecord) error {
	if rec.ImageID == "" {
		return nil
	}
	if err := s.opts.Images.Release(rec.ImageID, rec.ID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

func (s *RuntimeServer) takeImageVolumes(_ context.Context, b *ctrBuild) error {
	vols, err := s.acquireImageVolumes(b.rec.ID, b.rec.Bundle, b.req.GetConfig())
	b.rec.ImageVolumes = vols
	return err
}

// writeContainerRecord writes the record before anything is mounted or created, so that a berthd killed from here on
// rolls the container back at start.
func (s *RuntimeServer) writeContainerRecord(_ context.Context, b *ctrBuild) error {
	if err := b.rec.transition(ctrCreating); err != nil {
		return err
	}
	if err := s.containers.Create(b.rec.ID, b.rec); err != nil {
		return err
	}
	b.recorded = true
	return nil
}

// writableLayer is the container's writable layer: the overlay's upper and work dirs.
func (s *RuntimeServer) writableLayer(id string) string {
	return filepath.Join(s.opts.RootDir, "containers", id)
}

func (s *RuntimeServer) mountRootfs(_ context.Context, b *ctrBuild) error {
	layer := s.writableLayer(b.rec.ID)
	return s.opts.Images.MountRootfsMapped(b.img, filepath.Join(layer, "upper"), filepath.Join(layer, "work"),
		filepath.Join(b.rec.Bundle, "rootfs"), imageIDMap(b.pod))
}

// removeRootfs unmounts the rootfs, then removes the bundle (config.json, exit.json, the mount points) and the
// writable layer: only once nothing is mounted there.
func (s *RuntimeServer) removeRootfs(_ context.Context, rec containerRecord) error {
	if err := s.opts.Images.Unmount(filepath.Join(rec.Bundle, "rootfs")); err != nil {
		return err
	}
	return errors.Join(os.RemoveAll(rec.Bundle), os.RemoveAll(s.writableLayer(rec.ID)))
}

func (s *RuntimeServer) mountVolumes(_ context.Context, b *ctrBuild) error {
	return s.mountImageVolumes(b.req.GetConfig(), b.rec.ImageVolumes, imageIDMap(b.pod))
}

// generateSpec resolves the user in the mounted rootfs and generates the OCI spec.
func (s *RuntimeServer) generateSpec(_ context.Context, b *ctrBuild) error {
	cfg, img := b.req.GetConfig(), b.img
	in := specgen.SpecInput{ID: b.rec.ID, Pod: ociPod(b.pod, b.podRec.Config), Image: img.Config.Config,
		Config: containerConfig(cfg), Host: s.opts.Host}
	inheritPodNamespaces(&in.Config, b.podRec.Config)
	withImageVolumes(in.Config.Mounts, b.rec.ImageVolumes)
	var sc *specgen.LinuxContainerSecurityContext
	if in.Config.Linux != nil {
		sc = in.Config.Linux.SecurityContext
	}
	user, err := specgen.ResolveUser(filepath.Join(b.rec.Bundle, "rootfs"), img.Config.Config.User, sc)
	if err != nil {
		return err
	}
	in.User, b.user = &user, user
	if ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns.GetPid() == runtimeapi.NamespaceMode_TARGET {
		if in.TargetPIDNS, err = s.targetPIDNS(b.podRec.ID, ns.GetTargetId()); err != nil {
			return err
		}
	}
	b.spec, err = specgen.Spec(in)
	return err
}

func writeBundleConfig(_ context.Context, b *ctrBuild) error {
	data, err := json.Marshal(b.spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	return os.WriteFile(filepath.Join(b.rec.Bundle, "config.json"), data, 0o600)
}

func (s *RuntimeServer) createInMonitor(ctx context.Context, b *ctrBuild) error {
	cfg := b.req.GetConfig()
	return b.mon.Create(ctx, monitor.CreateRequest{ID: b.rec.ID, Bundle: b.rec.Bundle, LogPath: b.rec.LogPath,
		LogDir: logDir(b.podRec.Config, b.rec.LogPath), Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(), TTY: cfg.GetTty()})
}

// removeFromMonitor removes the container from its monitor when the monitor runs, then what libcontainer keeps of it
// (cgroup, state), which the monitor's removal leaves nothing of, and a dead monitor all of.
func (s *RuntimeServer) removeFromMonitor(ctx context.Context, rec containerRecord) error {
	if mon, err := s.monitorOf(rec.PodID); err == nil {
		if err := mon.Remove(ctx, rec.ID); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
			return err
		}
	}
	if err := s.opts.Containers.Destroy(ctx, rec.ID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// markCreated records the container created, with the identity and stop signal that its status reports.
func (s *RuntimeServer) markCreated(_ context.Context, b *ctrBuild) error {
	// The spec's groups, not the image user's: CDI devices may have added some.
	gids := b.spec.Process.User.AdditionalGids
	groups := make([]int64, 0, len(gids))
	for _, g := range gids {
		groups = append(groups, int64(g))
	}
	rec, err := s.containers.Update(b.rec.ID, func(c *containerRecord) error {
		c.UID, c.GID, c.AdditionalGIDs = int64(b.user.UID), int64(b.user.GID), groups
		c.StopSignal = b.img.Config.Config.StopSignal
		return c.transition(ctrCreated)
	})
	if err == nil {
		b.rec = rec
	}
	return err
}

// targetPIDNS is the PID namespace of another running container of the pod (namespace mode TARGET).
func (s *RuntimeServer) targetPIDNS(podID, target string) (string, error) {
	rec, ok := s.containers.Get(target)
	if !ok || rec.PodID != podID {
		return "", errdefs.NotFound("target container", target)
	}
	c, err := s.opts.Containers.Load(target)
	if err != nil {
		return "", fmt.Errorf("target container %s: %w", target, err)
	}
	pid := c.Pid()
	if pid <= 0 {
		return "", errdefs.FailedPrecondition("target container %s is not running", target)
	}
	return "/proc/" + strconv.Itoa(pid) + "/ns/pid", nil
}
