package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/sandbox"
)

// RunPodSandbox creates and starts a pod. The work runs detached from the call: a kubelet that times out and retries
// with the same pod gets the first call's pod (names.go).
func (s *RuntimeServer) RunPodSandbox(ctx context.Context, r *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := r.GetConfig()
	if err := validatePodConfig(cfg); err != nil {
		return nil, err
	}
	if podUserNS(cfg) != nil {
		if err := s.userNamespaces(); err != nil {
			return nil, fmt.Errorf("config.linux.security_context.namespace_options.userns_options: user namespaces do not work on this host: %v: %w", err, errdefs.ErrFailedPrecondition)
		}
	}
	if err := s.checkRuntimeHandler(r); err != nil {
		return nil, err
	}
	id, err := s.podNames.once(ctx, podNameKey(cfg.GetMetadata()), func(ctx context.Context, id string) error {
		return s.runPod(ctx, id, r)
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (s *RuntimeServer) runPod(ctx context.Context, id string, r *runtimeapi.RunPodSandboxRequest) error {
	unlock, err := s.podLocks.Lock(ctx, id)
	if err != nil {
		return fmt.Errorf("run pod %s: %w", id, err)
	}
	defer unlock()
	log := Logger(ctx).With("pod", id)
	rec := podRecord{ID: id, Config: r.GetConfig(), RuntimeHandler: r.GetRuntimeHandler(), CreatedAt: time.Now().UnixNano()}
	if err := rec.transition(podCreating); err != nil {
		return err
	}
	// The record comes first: a berthd killed from here on finds it at start and rolls the pod back.
	if err := s.pods.Create(id, rec); err != nil {
		return fmt.Errorf("run pod %s: %w", id, err)
	}
	pod, err := s.createPodRuntime(ctx, log, id, r.GetConfig(), r.GetRuntimeHandler())
	if err == nil {
		defer s.nriBlockSync()()         // until the pod is ready, for a plugin connecting meanwhile
		err = s.nriRunPod(ctx, rec, pod) // a plugin refusing the pod: abandonPod rolls it back
	}
	if err != nil {
		return fmt.Errorf("run pod %s: %w", id, s.abandonPod(ctx, log, rec, pod, err))
	}
	var ips []string
	if n := pod.Network(); n != nil {
		for _, ip := range n.IPs {
			ips = append(ips, ip.String())
		}
	}
	if _, err := s.pods.Update(id, func(p *podRecord) error {
		p.IPs = ips
		return p.transition(podReady)
	}); err != nil {
		return fmt.Errorf("run pod %s: %w", id, s.abandonPod(ctx, log, rec, pod, err))
	}
	s.mu.Lock()
	s.sandbox[id] = pod
	s.mu.Unlock()
	s.watchPod(id, pod)
	s.opts.Metrics.podStarted(time.Since(time.Unix(0, rec.CreatedAt)))
	log.Info("pod ready", "name", r.GetConfig().GetMetadata().GetName(), "namespace", r.GetConfig().GetMetadata().GetNamespace(), "ips", ips)
	s.emitPodEvent(rec, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return nil
}

// abandonPod ends a creation that failed with cause: it removes what is left of the pod (pod, nil when the sandbox
// manager rolled it back) and its record. When that fails, or a panic left the pod in a state nobody knows, the pod
// is kept, not ready (keepHalfMadePod), for RemovePodSandbox to retry and for recovery. It returns cause, with the
// rollback's failure in its text: the cause keeps its code.
func (s *RuntimeServer) abandonPod(ctx context.Context, log *slog.Logger, rec podRecord, pod PodRuntime, cause error) error {
	err := s.undoPod(ctx, rec, pod, cause)
	if err == nil {
		return cause
	}
	log.Error("pod rollback failed; it stays, not ready, for RemovePodSandbox to finish", "err", err)
	s.keepHalfMadePod(rec, pod)
	return fmt.Errorf("%w (and its rollback failed: %v)", cause, err)
}

// undoPod is the one undo of a pod in cri/ (a failed RunPodSandbox, RemovePodSandbox, recovery): the pod's runtime
// removed (the sandbox manager's stage undos), then its record. cause is why a creation failed, nil for a removal.
func (s *RuntimeServer) undoPod(ctx context.Context, rec podRecord, pod PodRuntime, cause error) error {
	switch {
	case pod != nil:
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		if err := pod.Remove(cctx); err != nil {
			return err
		}
	case errdefs.IsInternal(cause):
		return errors.New("a panic left the pod half-made; recovery at the next start removes what is left")
	}
	return s.pods.Delete(rec.ID)
}

// createPodRuntime makes the pod's runtime; a panic in it is an error wrapping errdefs.ErrInternal.
func (s *RuntimeServer) createPodRuntime(ctx context.Context, log *slog.Logger, id string, cfg *runtimeapi.PodSandboxConfig, handler string) (pod PodRuntime, err error) {
	defer recoverCreation(log, "create pod runtime "+id, &err)
	return s.opts.Sandboxes.Create(ctx, sandboxConfig(id, cfg, handler))
}

func sandboxConfig(id string, cfg *runtimeapi.PodSandboxConfig, handler string) sandbox.Config {
	md := cfg.GetMetadata()
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	out := sandbox.Config{
		ID: id, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), Attempt: md.GetAttempt(),
		Hostname: cfg.GetHostname(),
		LogDir:   cfg.GetLogDirectory(),
		DNS: sandbox.DNSConfig{Servers: cfg.GetDnsConfig().GetServers(), Searches: cfg.GetDnsConfig().GetSearches(),
			Options: cfg.GetDnsConfig().GetOptions()},
		CgroupParent: cfg.GetLinux().GetCgroupParent(),
		Namespaces: sandbox.NamespaceOptions{Network: sandbox.NamespaceMode(ns.GetNetwork()),
			PID: sandbox.NamespaceMode(ns.GetPid()), IPC: sandbox.NamespaceMode(ns.GetIpc())},
		Sysctls:     cfg.GetLinux().GetSysctls(),
		Annotations: cfg.GetAnnotations(),
		UserNS:      podUserNS(cfg),
		// Checked by RunPodSandbox: "", "runc" or a configured one.
		RuntimeHandler: handler,
	}
	for _, p := range cfg.GetPortMappings() {
		out.PortMappings = append(out.PortMappings, sandbox.PortMapping{Protocol: p.GetProtocol().String(),
			ContainerPort: p.GetContainerPort(), HostPort: p.GetHostPort(), HostIP: p.GetHostIp()})
	}
	return out
}

func podNameKey(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// newID returns a 64-hex-digit id, as the kubelet and crictl expect from containerd.
func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// cleanupTimeout bounds rollback and teardown work, which never runs on a request's context.
const cleanupTimeout = time.Minute

func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}
