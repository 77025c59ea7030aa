package cri

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// specEditor is the small part of runtime-tools' spec generator that NRI's adjustment helpers
// (github.com/containerd/nri/pkg/runtime-tools/generate) call, written over the spec berth built: the whole of
// runtime-tools (JSON schema validation, capability tables) would grow berthd for these few setters.
type specEditor struct{ s *specs.Spec }

func (g specEditor) Spec() *specs.Spec { return g.s }

func (g specEditor) process() *specs.Process {
	if g.s.Process == nil {
		g.s.Process = &specs.Process{}
	}
	return g.s.Process
}

func (g specEditor) linux() *specs.Linux {
	if g.s.Linux == nil {
		g.s.Linux = &specs.Linux{}
	}
	return g.s.Linux
}

func (g specEditor) resources() *specs.LinuxResources {
	l := g.linux()
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	return l.Resources
}

func (g specEditor) cpu() *specs.LinuxCPU {
	r := g.resources()
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func (g specEditor) memory() *specs.LinuxMemory {
	r := g.resources()
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func (g specEditor) hooks() *specs.Hooks {
	if g.s.Hooks == nil {
		g.s.Hooks = &specs.Hooks{}
	}
	return g.s.Hooks
}

func (g specEditor) AddAnnotation(key, value string) {
	if g.s.Annotations == nil {
		g.s.Annotations = map[string]string{}
	}
	g.s.Annotations[key] = value
}

func (g specEditor) RemoveAnnotation(key string) { delete(g.s.Annotations, key) }

func (g specEditor) AddDevice(d specs.LinuxDevice) {
	l := g.linux()
	for i, o := range l.Devices {
		if o.Path == d.Path {
			l.Devices[i] = d
			return
		}
	}
	l.Devices = append(l.Devices, d)
}

func (g specEditor) RemoveDevice(path string) {
	l := g.linux()
	l.Devices = slices.DeleteFunc(l.Devices, func(d specs.LinuxDevice) bool { return d.Path == path })
}

func (g specEditor) AddOrReplaceLinuxNamespace(ns, path string) error {
	t, err := namespaceType(ns)
	if err != nil {
		return err
	}
	l := g.linux()
	for i, o := range l.Namespaces {
		if o.Type == t {
			l.Namespaces[i].Path = path
			return nil
		}
	}
	l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
	return nil
}

func (g specEditor) RemoveLinuxNamespace(ns string) error {
	t, err := namespaceType(ns)
	if err != nil {
		return err
	}
	l := g.linux()
	l.Namespaces = slices.DeleteFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
	return nil
}

// namespaceType accepts runtime-tools' names ("net", "mnt", ...) and the spec's ("network", "mount", ...).
func namespaceType(ns string) (specs.LinuxNamespaceType, error) {
	switch ns {
	case "net", "network":
		return specs.NetworkNamespace, nil
	case "mnt", "mount":
		return specs.MountNamespace, nil
	case "pid", "ipc", "uts", "user", "cgroup", "time":
		return specs.LinuxNamespaceType(ns), nil
	}
	return "", fmt.Errorf("unknown namespace type %q", ns)
}

func (g specEditor) AddPreStartHook(h specs.Hook) {
	// Deprecated in the runtime spec, still run by runc and crun; NRI plugins may add them.
	g.hooks().Prestart = append(g.hooks().Prestart, h)
}
func (g specEditor) AddPostStartHook(h specs.Hook) {
	g.hooks().Poststart = append(g.hooks().Poststart, h)
}
func (g specEditor) AddPostStopHook(h specs.Hook) { g.hooks().Poststop = append(g.hooks().Poststop, h) }

func (g specEditor) AddProcessEnv(name, value string) {
	p := g.process()
	kv := name + "=" + value
	for i, e := range p.Env {
		if k, _, _ := strings.Cut(e, "="); k == name {
			p.Env[i] = kv
			return
		}
	}
	p.Env = append(p.Env, kv)
}

func (g specEditor) ClearProcessEnv() { g.process().Env = nil }

func (g specEditor) SetProcessArgs(args []string) { g.process().Args = args }

func (g specEditor) SetProcessOOMScoreAdj(adj int) { g.process().OOMScoreAdj = &adj }

func (g specEditor) AddLinuxResourcesDevice(allow bool, devType string, major, minor *int64, access string) {
	r := g.resources()
	r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: allow, Type: devType, Major: major, Minor: minor, Access: access})
}

func (g specEditor) AddLinuxResourcesHugepageLimit(pageSize string, limit uint64) {
	r := g.resources()
	for i, h := range r.HugepageLimits {
		if h.Pagesize == pageSize {
			r.HugepageLimits[i].Limit = limit
			return
		}
	}
	r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: pageSize, Limit: limit})
}

func (g specEditor) AddLinuxResourcesUnified(key, val string) {
	r := g.resources()
	if r.Unified == nil {
		r.Unified = map[string]string{}
	}
	r.Unified[key] = val
}

func (g specEditor) AddMount(m specs.Mount) { g.s.Mounts = append(g.s.Mounts, m) }

func (g specEditor) ClearMounts() { g.s.Mounts = nil }

func (g specEditor) Mounts() []specs.Mount { return g.s.Mounts }

func (g specEditor) RemoveMount(dest string) {
	g.s.Mounts = slices.DeleteFunc(g.s.Mounts, func(m specs.Mount) bool { return m.Destination == dest })
}

func (g specEditor) AddLinuxSysctl(key, value string) {
	l := g.linux()
	if l.Sysctl == nil {
		l.Sysctl = map[string]string{}
	}
	l.Sysctl[key] = value
}

func (g specEditor) RemoveLinuxSysctl(key string) { delete(g.linux().Sysctl, key) }

func (g specEditor) SetLinuxCgroupsPath(path string) { g.linux().CgroupsPath = path }

func (g specEditor) SetLinuxResourcesCPUCpus(cpus string)     { g.cpu().Cpus = cpus }
func (g specEditor) SetLinuxResourcesCPUMems(mems string)     { g.cpu().Mems = mems }
func (g specEditor) SetLinuxResourcesCPUPeriod(period uint64) { g.cpu().Period = &period }
func (g specEditor) SetLinuxResourcesCPUQuota(quota int64)    { g.cpu().Quota = &quota }
func (g specEditor) SetLinuxResourcesCPUShares(shares uint64) { g.cpu().Shares = &shares }
func (g specEditor) SetLinuxResourcesCPURealtimePeriod(period uint64) {
	g.cpu().RealtimePeriod = &period
}
func (g specEditor) SetLinuxResourcesCPURealtimeRuntime(t int64) { g.cpu().RealtimeRuntime = &t }
func (g specEditor) SetLinuxResourcesMemoryLimit(limit int64)    { g.memory().Limit = &limit }
func (g specEditor) SetLinuxResourcesMemorySwap(swap int64)      { g.memory().Swap = &swap }

func (g specEditor) SetLinuxRootPropagation(rp string) error {
	switch rp {
	case "", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
		g.linux().RootfsPropagation = rp
		return nil
	}
	return fmt.Errorf("rootfs propagation %q is not valid", rp)
}
