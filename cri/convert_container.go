package cri

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/oci/specgen"
)

// containerConfig maps the CRI container config onto oci's mirror types. Image volumes (Mount.image) must have been
// resolved by the caller into a host path before the spec is generated.
func containerConfig(c *runtimeapi.ContainerConfig) specgen.ContainerConfig {
	out := specgen.ContainerConfig{
		Name:       c.GetMetadata().GetName(),
		Image:      c.GetImage().GetImage(),
		Command:    c.GetCommand(),
		Args:       c.GetArgs(),
		WorkingDir: c.GetWorkingDir(),
		Tty:        c.GetTty(),
	}
	for _, e := range c.GetEnvs() {
		out.Envs = append(out.Envs, specgen.KeyValue{Key: e.GetKey(), Value: string(e.GetValue())})
	}
	for _, m := range c.GetMounts() {
		out.Mounts = append(out.Mounts, mount(m))
	}
	for _, d := range c.GetDevices() {
		out.Devices = append(out.Devices, specgen.Device{ContainerPath: d.GetContainerPath(), HostPath: d.GetHostPath(), Permissions: d.GetPermissions()})
	}
	if l := c.GetLinux(); l != nil {
		out.Linux = &specgen.LinuxContainerConfig{Resources: resources(l.GetResources()), SecurityContext: securityContext(l.GetSecurityContext())}
	}
	return out
}

func mount(m *runtimeapi.Mount) specgen.Mount {
	return specgen.Mount{
		ContainerPath:     m.GetContainerPath(),
		HostPath:          m.GetHostPath(),
		Readonly:          m.GetReadonly(),
		RecursiveReadOnly: m.GetRecursiveReadOnly(),
		Propagation:       specgen.MountPropagation(m.GetPropagation()),
		UidMappings:       idMappings(m.GetUidMappings()),
		GidMappings:       idMappings(m.GetGidMappings()),
	}
}

func idMappings(ms []*runtimeapi.IDMapping) []specgen.IDMapping {
	var out []specgen.IDMapping
	for _, m := range ms {
		out = append(out, specgen.IDMapping{HostId: m.GetHostId(), ContainerId: m.GetContainerId(), Length: m.GetLength()})
	}
	return out
}

func resources(r *runtimeapi.LinuxContainerResources) *specgen.LinuxContainerResources {
	if r == nil {
		return nil
	}
	out := &specgen.LinuxContainerResources{
		CpuPeriod:              r.GetCpuPeriod(),
		CpuQuota:               r.GetCpuQuota(),
		CpuShares:              r.GetCpuShares(),
		MemoryLimitInBytes:     r.GetMemoryLimitInBytes(),
		OomScoreAdj:            r.GetOomScoreAdj(),
		CpusetCpus:             r.GetCpusetCpus(),
		CpusetMems:             r.GetCpusetMems(),
		Unified:                r.GetUnified(),
		MemorySwapLimitInBytes: r.GetMemorySwapLimitInBytes(),
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, specgen.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return out
}

func securityContext(s *runtimeapi.LinuxContainerSecurityContext) *specgen.LinuxContainerSecurityContext {
	if s == nil {
		return nil
	}
	out := &specgen.LinuxContainerSecurityContext{
		Privileged:               s.GetPrivileged(),
		NamespaceOptions:         namespaceOption(s.GetNamespaceOptions()),
		RunAsUsername:            s.GetRunAsUsername(),
		ReadonlyRootfs:           s.GetReadonlyRootfs(),
		SupplementalGroups:       s.GetSupplementalGroups(),
		SupplementalGroupsPolicy: specgen.SupplementalGroupsPolicy(s.GetSupplementalGroupsPolicy()),
		NoNewPrivs:               s.GetNoNewPrivs(),
		MaskedPaths:              s.GetMaskedPaths(),
		ReadonlyPaths:            s.GetReadonlyPaths(),
		Seccomp:                  securityProfile(s.GetSeccomp()),
		Apparmor:                 securityProfile(s.GetApparmor()),
		ApparmorProfile:          s.GetApparmorProfile(),
		SeccompProfilePath:       s.GetSeccompProfilePath(),
	}
	if c := s.GetCapabilities(); c != nil {
		out.Capabilities = &specgen.Capability{
			AddCapabilities:        c.GetAddCapabilities(),
			DropCapabilities:       c.GetDropCapabilities(),
			AddAmbientCapabilities: c.GetAddAmbientCapabilities(),
		}
	}
	if u := s.GetRunAsUser(); u != nil {
		v := u.GetValue()
		out.RunAsUser = &v
	}
	if g := s.GetRunAsGroup(); g != nil {
		v := g.GetValue()
		out.RunAsGroup = &v
	}
	return out
}

func namespaceOption(n *runtimeapi.NamespaceOption) *specgen.NamespaceOption {
	if n == nil {
		return nil
	}
	return &specgen.NamespaceOption{
		Network:       specgen.NamespaceMode(n.GetNetwork()),
		Pid:           specgen.NamespaceMode(n.GetPid()),
		Ipc:           specgen.NamespaceMode(n.GetIpc()),
		TargetId:      n.GetTargetId(),
		UsernsOptions: userNamespace(n.GetUsernsOptions()),
	}
}

func userNamespace(u *runtimeapi.UserNamespace) *specgen.UserNamespace {
	if u == nil {
		return nil
	}
	return &specgen.UserNamespace{Mode: specgen.NamespaceMode(u.GetMode()), Uids: idMappings(u.GetUids()), Gids: idMappings(u.GetGids())}
}

func securityProfile(p *runtimeapi.SecurityProfile) *specgen.SecurityProfile {
	if p == nil {
		return nil
	}
	return &specgen.SecurityProfile{ProfileType: specgen.ProfileType(p.GetProfileType()), LocalhostRef: p.GetLocalhostRef()}
}
