package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/kernel"
	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/sandbox"
)

// HostImages is the image store of this host as the runtime service uses it.
func HostImages(s *image.Service) Images { return hostImages{s} }

type hostImages struct{ *image.Service }

func (hostImages) Unmount(target string) error { return image.UnmountRootfs(target) }

// HostContainers is the containers under libcontainer's root r and under each handler's (OCI runtime binaries,
// whose records oci/ociruntime keeps in ctr's format), read and acted on from berthd. Container ids are unique
// across handlers: a container is acted on through the runtime whose root holds it.
func HostContainers(r *ctr.Runtime, handlers ...*ctr.Runtime) Containers {
	return hostContainers{def: r, handlers: handlers}
}

type hostContainers struct {
	def      *ctr.Runtime
	handlers []*ctr.Runtime
}

// of is the runtime holding container id: a handler's when its root has it, else libcontainer's.
func (h hostContainers) of(id string) *ctr.Runtime {
	for _, r := range h.handlers {
		if _, err := os.Stat(filepath.Join(r.Root, filepath.Base(id))); err == nil {
			return r
		}
	}
	return h.def
}

func (h hostContainers) Load(id string) (Container, error) {
	st, err := h.of(id).Load(id)
	if err != nil {
		return nil, err // not a nil *ctr.State in a Container
	}
	return st, nil
}

func (h hostContainers) Exec(ctx context.Context, id string, p ctr.ExecProcess) (ctr.ExitStatus, error) {
	return h.of(id).Exec(ctx, id, p)
}

func (h hostContainers) Update(id string, res *specs.LinuxResources) error {
	return h.of(id).Update(id, res)
}

func (h hostContainers) Destroy(ctx context.Context, id string) error {
	return h.of(id).Destroy(ctx, id)
}

// HostSandboxes is the pods of m. rootDir is the runtime root, where image layers are idmapped for pods with their
// own user namespace.
func HostSandboxes(m *sandbox.Manager, rootDir string) Sandboxes {
	return hostSandboxes{m: m, rootDir: rootDir}
}

type hostSandboxes struct {
	m       *sandbox.Manager
	rootDir string
}

func (h hostSandboxes) Create(ctx context.Context, cfg sandbox.Config) (PodRuntime, error) {
	p, err := h.m.Create(ctx, cfg)
	if p == nil {
		return nil, err
	}
	return hostPod{Pod: p, m: h.m}, err
}

func (h hostSandboxes) Recover(ctx context.Context) ([]RecoveredPod, error) {
	found, err := h.m.Recover(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RecoveredPod, 0, len(found))
	for _, rp := range found {
		out = append(out, RecoveredPod{Pod: hostPod{Pod: rp.Pod, m: h.m}, Err: rp.Err})
	}
	return out, nil
}

// UserNamespaces probes the pods dir and the runtime root for idmapped mounts, and overlayfs for stacking idmapped
// layers (lowerdir+ by descriptor, Linux 6.8).
func (h hostSandboxes) UserNamespaces() error {
	if err := kernel.OverlayAppend(); err != nil {
		return fmt.Errorf("idmapped image layers need %w", err)
	}
	return errors.Join(h.m.UserNamespaces(), sandbox.ProbeUserNamespaces(h.rootDir))
}

// hostPod is a pod of sandbox/ with its manager, which stops and removes it.
type hostPod struct {
	*sandbox.Pod
	m *sandbox.Manager
}

// Monitor is the pod's monitor as cri/ drives it. The monitors cmd/berthd starts for sandbox/ are
// *monitor.Client, which has these methods: sandbox/ only needs fewer of them.
func (p hostPod) Monitor() Monitor {
	m, _ := p.Pod.Monitor().(Monitor)
	return m
}

func (p hostPod) CgroupStats() (*ctr.Stats, error) {
	cg, err := p.Cgroup()
	if err != nil {
		return nil, err
	}
	return ctr.CgroupStats(cg)
}

func (p hostPod) Stop(ctx context.Context) error   { return p.m.Stop(ctx, p.Pod) }
func (p hostPod) Remove(ctx context.Context) error { return p.m.Remove(ctx, p.Pod) }
