package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	if h := r.GetRuntimeHandler(); h != "" && h != "runc" {
		return nil, errdefs.NotFound("runtime handler", h)
	}
	key := podNameKey(cfg.GetMetadata())
	res, first := s.podNames.reserve(key, newID())
	if !first {
		id, err := s.podNames.await(ctx, "pod sandbox", key, res)
		if err != nil {
			return nil, err
		}
		return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
	}
	err, delivered := detached(ctx, func(ctx context.Context) error {
		err := s.runPod(ctx, res.id, r)
		s.podNames.finish(key, res, err)
		return err
	})
	if err != nil {
		return nil, err
	}
	if delivered {
		s.podNames.deliver(res)
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: res.id}, nil
}

func (s *RuntimeServer) runPod(ctx context.Context, id string, r *runtimeapi.RunPodSandboxRequest) error {
	unlock, err := s.podLocks.Lock(ctx, id)
	if err != nil {
		return fmt.Errorf("run pod %s: %w", id, err)
	}
	defer unlock()
	log := Logger(ctx).With("pod", id)
	rec := podRecord{ID: id, Config: r.GetConfig(), RuntimeHandler: r.GetRuntimeHandler(), State: podCreating,
		CreatedAt: time.Now().UnixNano()}
	// The record comes first: a berthd killed from here on finds it at start and rolls the pod back.
	if err := s.pods.Create(id, rec); err != nil {
		return fmt.Errorf("run pod %s: %w", id, err)
	}
	pod, err := s.createPodRuntime(ctx, log, id, r.GetConfig())
	if err == nil {
		defer s.nriBlockSync()()              // until the pod is ready, for a plugin connecting meanwhile
		pod, err = s.nriRunPod(ctx, rec, pod) // a plugin refusing the pod rolls it back
	}
	if err != nil {
		switch {
		case pod != nil, errdefs.IsInternal(err): // a failed rollback; a panic, which left what it left
			s.keepHalfMadePod(rec, pod)
		default: // rolled back
			_ = s.pods.Delete(id)
		}
		return fmt.Errorf("run pod %s: %w", id, err)
	}
	var ips []string
	if n := pod.Network(); n != nil {
		for _, ip := range n.IPs {
			ips = append(ips, ip.String())
		}
	}
	if _, err := s.pods.Update(id, func(p *podRecord) error {
		p.State, p.IPs = podReady, ips
		return nil
	}); err != nil {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		_ = pod.Remove(cctx)
		_ = s.pods.Delete(id)
		return fmt.Errorf("run pod %s: %w", id, err)
	}
	s.mu.Lock()
	s.sandbox[id] = pod
	s.mu.Unlock()
	s.watchPod(id, pod)
	log.Info("pod ready", "name", r.GetConfig().GetMetadata().GetName(), "namespace", r.GetConfig().GetMetadata().GetNamespace(), "ips", ips)
	s.emitPodEvent(rec, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return nil
}

// createPodRuntime makes the pod's runtime; a panic in it is an error wrapping errdefs.ErrInternal.
func (s *RuntimeServer) createPodRuntime(ctx context.Context, log *slog.Logger, id string, cfg *runtimeapi.PodSandboxConfig) (pod PodRuntime, err error) {
	defer recoverCreation(log, "create pod runtime "+id, &err)
	return s.opts.Sandboxes.Create(ctx, sandboxConfig(id, cfg))
}

func sandboxConfig(id string, cfg *runtimeapi.PodSandboxConfig) sandbox.Config {
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
