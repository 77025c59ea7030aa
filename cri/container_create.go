package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/oci/specgen"
)

// CreateContainer creates a container in a ready pod. Like RunPodSandbox it runs detached from the call, so a
// kubelet retry after a timeout gets the first call's container.
func (s *RuntimeServer) CreateContainer(ctx context.Context, r *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	podID, cfg := r.GetPodSandboxId(), r.GetConfig()
	switch {
	case podID == "":
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must be set")
	case cfg == nil:
		return nil, errdefs.InvalidArgument("config", "missing")
	case cfg.GetMetadata().GetName() == "":
		return nil, errdefs.InvalidArgument("config.metadata.name", "must be set")
	case cfg.GetImage().GetImage() == "":
		return nil, errdefs.InvalidArgument("config.image.image", "must be set")
	}
	pod, ok := s.pods.Get(podID)
	if !ok {
		return nil, errdefs.NotFound("pod sandbox", podID)
	}
	if pod.State != podReady {
		return nil, errdefs.FailedPrecondition("pod sandbox %s is not ready", podID)
	}
	if err := validateContainerConfig(pod.Config, cfg); err != nil {
		return nil, err
	}
	key := containerNameKey(podID, cfg.GetMetadata())
	res, first := s.ctrNames.reserve(key, newID())
	if !first {
		id, err := s.ctrNames.await(ctx, "container", key, res)
		if err != nil {
			return nil, err
		}
		return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
	}
	err, delivered := detached(ctx, func(ctx context.Context) error {
		err := s.createContainer(ctx, res.id, podID, r)
		s.nriCreated(ctx, res.id, podID, err)
		s.ctrNames.finish(key, res, err)
		return err
	})
	if err != nil {
		return nil, err
	}
	if delivered {
		s.ctrNames.deliver(res)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: res.id}, nil
}

// createContainer takes the pod's lock shared with the pod's other creations, so that a StopPodSandbox or
// RemovePodSandbox either waits until this container is made (and then stops or removes it) or runs first (and this
// finds the pod gone or not ready), then the container's lock.
func (s *RuntimeServer) createContainer(ctx context.Context, id, podID string, r *runtimeapi.CreateContainerRequest) error {
	unlockPod, err := s.podLocks.RLock(ctx, podID)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	defer unlockPod()
	podRec, ok := s.pods.Get(podID)
	switch {
	case !ok:
		return errdefs.NotFound("pod sandbox", podID)
	case podRec.State != podReady:
		return errdefs.FailedPrecondition("pod sandbox %s is not ready", podID)
	}
	unlock, err := s.ctrLocks.Lock(ctx, id)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	defer unlock()
	return s.buildContainer(ctx, id, podRec, r)
}

// buildContainer makes the container; the caller holds the pod's and the container's locks.
func (s *RuntimeServer) buildContainer(ctx context.Context, id string, podRec podRecord, r *runtimeapi.CreateContainerRequest) (retErr error) {
	cfg := r.GetConfig()
	pod := s.sandboxPod(podRec.ID)
	if pod == nil {
		return errdefs.FailedPrecondition("pod sandbox %s has no running runtime", podRec.ID)
	}
	if err := pod.CheckPause(); err != nil {
		s.podLost(podRec.ID, "its pause process exited")
		return fmt.Errorf("create container %s: %w", id, err)
	}
	mon := pod.Monitor()
	if mon == nil {
		return fmt.Errorf("pod sandbox %s: monitor not reachable: %w", podRec.ID, errdefs.ErrUnavailable)
	}

	// Until the record is written, undo releases what was taken; from then on the one undo of a container is
	// forgetContainer (RemoveContainer's and recovery's too), and a failed one keeps the record for their retry.
	var undo []func()
	var rec containerRecord
	recorded := false
	defer func() {
		if retErr == nil {
			return
		}
		if !recorded {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			return
		}
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		s.exits.unwatch(rec.Bundle)
		if err := s.forgetContainer(cctx, rec); err != nil {
			Logger(ctx).Error("container rollback failed; it stays, exited, for RemoveContainer to finish", "container", id, "err", err)
			s.keepHalfMadeContainer(rec, err)
		}
	}()
	defer recoverCreation(Logger(ctx).With("container", id, "pod", podRec.ID), "create container "+id, &retErr)

	img, err := s.opts.Images.Acquire(cfg.GetImage().GetImage(), id)
	if err != nil {
		return fmt.Errorf("create container %s: image %q: %w", id, cfg.GetImage().GetImage(), err)
	}
	undo = append(undo, func() { _ = s.opts.Images.Release(img.ID, id) })
	crashPoint("create-container:image-acquired")

	bundle := filepath.Join(pod.Dir(), "containers", id)
	vols, err := s.acquireImageVolumes(id, bundle, cfg)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	undo = append(undo, func() { _ = s.releaseImageVolumes(id, vols) })
	rec = containerRecord{ID: id, PodID: podRec.ID, Config: cfg, ImageID: img.ID, ImageName: cfg.GetImage().GetImage(),
		State: ctrCreating, CreatedAt: time.Now().UnixNano(), Bundle: bundle, LogPath: logPath(podRec.Config, cfg),
		ImageVolumes: vols}
	// The record comes first so that a berthd killed from here on rolls the container back at start.
	if err := s.containers.Create(id, rec); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	recorded = true

	layer := filepath.Join(s.opts.RootDir, "containers", id)
	rootfs := filepath.Join(bundle, "rootfs")
	idmap := imageIDMap(pod)
	if err := s.opts.Images.MountRootfsMapped(img, filepath.Join(layer, "upper"), filepath.Join(layer, "work"), rootfs, idmap); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	if err := s.mountImageVolumes(cfg, vols, idmap); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}

	in := specgen.SpecInput{ID: id, Pod: ociPod(pod, podRec.Config), Image: img.Config.Config, Config: containerConfig(cfg), Host: s.opts.Host}
	inheritPodNamespaces(&in.Config, podRec.Config)
	withImageVolumes(in.Config.Mounts, vols)
	var sc *specgen.LinuxContainerSecurityContext
	if in.Config.Linux != nil {
		sc = in.Config.Linux.SecurityContext
	}
	user, err := specgen.ResolveUser(rootfs, img.Config.Config.User, sc)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	in.User = &user
	if ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns.GetPid() == runtimeapi.NamespaceMode_TARGET {
		if in.TargetPIDNS, err = s.targetPIDNS(podRec.ID, ns.GetTargetId()); err != nil {
			return fmt.Errorf("create container %s: %w", id, err)
		}
	}
	spec, err := specgen.Spec(in)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	if err := s.injectCDI(ctx, spec, cfg); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	defer s.nriBlockSync()()                                             // until created, for a plugin connecting meanwhile
	if err := s.nriCreateContainer(ctx, podRec, rec, spec); err != nil { // plugins may adjust the spec
		return fmt.Errorf("create container %s: %w", id, err)
	}
	if err := s.ensureAppArmor(ctx, spec.Process.ApparmorProfile); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("create container %s: encode spec: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	if err := mon.Create(ctx, monitor.CreateRequest{ID: id, Bundle: bundle, LogPath: rec.LogPath, LogDir: logDir(podRec.Config, rec.LogPath),
		Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(), TTY: cfg.GetTty()}); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	if err := s.exits.watch(id, bundle); err != nil {
		return fmt.Errorf("create container %s: watch exit: %w", id, err)
	}

	// The spec's groups, not user's: CDI devices may have added some.
	groups := make([]int64, 0, len(spec.Process.User.AdditionalGids))
	for _, g := range spec.Process.User.AdditionalGids {
		groups = append(groups, int64(g))
	}
	if _, err := s.containers.Update(id, func(c *containerRecord) error {
		c.State = ctrCreated
		c.UID, c.GID, c.AdditionalGIDs = int64(user.UID), int64(user.GID), groups
		c.StopSignal = img.Config.Config.StopSignal
		return nil
	}); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	Logger(ctx).Info("container created", "container", id, "pod", podRec.ID, "name", cfg.GetMetadata().GetName(), "image", img.ID)
	s.emitContainerEvent(id, podRec.ID, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return nil
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

func ociPod(p PodRuntime, cfg *runtimeapi.PodSandboxConfig) specgen.Pod {
	md := cfg.GetMetadata()
	return specgen.Pod{
		ID: p.ID(), Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(),
		Hostname: cfg.GetHostname(),
		NetNS:    p.NetNSPath(), IPCNS: p.IPCNSPath(), UTSNS: p.UTSNSPath(), PIDNS: p.PIDNSPath(),
		HostnamePath: p.HostnamePath(), HostsPath: p.HostsPath(), ResolvConfPath: p.ResolvPath(), ShmPath: p.ShmPath(),
		CgroupParent: p.CgroupParent(), SystemdCgroup: p.Systemd(),
		Sysctls:       cfg.GetLinux().GetSysctls(),
		Privileged:    cfg.GetLinux().GetSecurityContext().GetPrivileged(),
		UserNS:        p.UserNSPath(),
		UsernsOptions: userNamespace(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()),
	}
}

// logPath is the container's CRI log file: the pod's log directory joined with the container's relative log path,
// which validateContainerConfig made sure stays inside it.
func logPath(pod *runtimeapi.PodSandboxConfig, c *runtimeapi.ContainerConfig) string {
	if pod.GetLogDirectory() == "" || c.GetLogPath() == "" {
		return ""
	}
	return filepath.Join(pod.GetLogDirectory(), c.GetLogPath())
}

// logDir is the directory the monitor opens the log file beneath, with no symlink on the way from there.
func logDir(pod *runtimeapi.PodSandboxConfig, logPath string) string {
	if logPath == "" {
		return ""
	}
	return filepath.Clean(pod.GetLogDirectory())
}

func containerNameKey(podID string, md *runtimeapi.ContainerMetadata) string {
	return fmt.Sprintf("%s_%s_%d", podID, md.GetName(), md.GetAttempt())
}

// inheritPodNamespaces gives a container that names no namespace modes its pod's, and one that names no user
// namespace options the pod's: the kubelet always sends both, crictl and other clients often send only the pod's.
func inheritPodNamespaces(c *specgen.ContainerConfig, pod *runtimeapi.PodSandboxConfig) {
	podNS := pod.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if podNS == nil {
		return
	}
	if c.Linux == nil {
		c.Linux = &specgen.LinuxContainerConfig{}
	}
	if c.Linux.SecurityContext == nil {
		c.Linux.SecurityContext = &specgen.LinuxContainerSecurityContext{}
	}
	switch opts := c.Linux.SecurityContext.NamespaceOptions; {
	case opts == nil:
		c.Linux.SecurityContext.NamespaceOptions = namespaceOption(podNS)
	case opts.UsernsOptions == nil:
		opts.UsernsOptions = userNamespace(podNS.GetUsernsOptions())
	}
}
