package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
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
	id, err := s.ctrNames.once(ctx, containerNameKey(podID, cfg.GetMetadata()), func(ctx context.Context, id string) error {
		err := s.createContainer(ctx, id, podID, r)
		s.nriCreated(ctx, id, podID, err) // PostCreateContainer, or plugins told the creation failed
		return err
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
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
	b, err := s.newContainerBuild(id, podRec, r)
	if err != nil {
		return err
	}
	if err := s.runContainerStages(ctx, b); err != nil {
		return err
	}
	Logger(ctx).Info("container created", "container", id, "pod", podID, "name", r.GetConfig().GetMetadata().GetName(), "image", b.img.ID)
	s.emitContainerEvent(id, podID, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return nil
}

// newContainerBuild checks that the pod can take a container and prepares its stages' input.
func (s *RuntimeServer) newContainerBuild(id string, podRec podRecord, r *runtimeapi.CreateContainerRequest) (*ctrBuild, error) {
	pod := s.sandboxPod(podRec.ID)
	if pod == nil {
		return nil, errdefs.FailedPrecondition("pod sandbox %s has no running runtime", podRec.ID)
	}
	if err := pod.CheckPause(); err != nil {
		s.podLost(podRec.ID, "its pause process exited")
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	mon := pod.Monitor()
	if mon == nil {
		return nil, fmt.Errorf("pod sandbox %s: monitor not reachable: %w", podRec.ID, errdefs.ErrUnavailable)
	}
	cfg := r.GetConfig()
	rec := containerRecord{ID: id, PodID: podRec.ID, Config: cfg, ImageName: cfg.GetImage().GetImage(),
		CreatedAt: time.Now().UnixNano(), Bundle: filepath.Join(pod.Dir(), "containers", id), LogPath: logPath(podRec.Config, cfg)}
	return &ctrBuild{req: r, podRec: podRec, pod: pod, mon: mon, rec: rec}, nil
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
