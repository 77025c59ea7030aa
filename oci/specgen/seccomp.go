package specgen

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

const secField = "linux.security_context"

// profile is a SecurityProfile together with the field it came from, for errors.
type profile struct {
	SecurityProfile
	field string
}

// seccompRequest picks the container's seccomp profile: the typed field, else the deprecated string; nil means
// unconfined.
func seccompRequest(sc *LinuxContainerSecurityContext) (*profile, error) {
	if sc.Seccomp != nil {
		return &profile{*sc.Seccomp, secField + ".seccomp"}, nil
	}
	field := secField + ".seccomp_profile_path"
	switch p := sc.SeccompProfilePath; {
	case p == "" || p == "unconfined":
		return nil, nil
	case p == "runtime/default" || p == "docker/default":
		return &profile{SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}, field}, nil
	case strings.HasPrefix(p, "localhost/"):
		return &profile{SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: strings.TrimPrefix(p, "localhost/")}, field}, nil
	default:
		return nil, errdefs.InvalidArgument(field, "unknown profile %q", p)
	}
}

// seccompProfile returns the seccomp filter for a container whose bounding set is bounding: RuntimeDefault is
// moby's default profile (syscalls a capability allows are allowed with it), Localhost a profile file in the
// same format, read through fs. Privileged containers are not filtered.
func seccompProfile(sc *LinuxContainerSecurityContext, bounding []string, fs HostFS) (*specs.LinuxSeccomp, error) {
	if sc.Privileged {
		return nil, nil
	}
	p, err := seccompRequest(sc)
	if err != nil || p == nil {
		return nil, err
	}
	switch p.ProfileType {
	case ProfileTypeUnconfined:
		return nil, nil
	case ProfileTypeRuntimeDefault:
		return defaultSeccomp(bounding)
	case ProfileTypeLocalhost:
		file := strings.TrimPrefix(p.LocalhostRef, "localhost/")
		if !path.IsAbs(file) {
			return nil, errdefs.InvalidArgument(p.field+".localhost_ref", "seccomp profile path %q is not absolute", file)
		}
		// A request names the file: it must be a regular file under MaxProfileSize (HostFS.ReadFile), so that
		// /dev/zero cannot exhaust berthd's memory nor a FIFO hang CreateContainer.
		body, err := fs.ReadFile(file)
		if err != nil {
			return nil, errdefs.InvalidArgument(p.field+".localhost_ref", "read seccomp profile: %v", err)
		}
		out, err := seccomp.LoadProfile(string(body), boundingSpec(bounding))
		if err != nil {
			return nil, errdefs.InvalidArgument(p.field+".localhost_ref", "seccomp profile %s: %v", file, err)
		}
		return out, nil
	}
	return nil, errdefs.InvalidArgument(p.field+".profile_type", "unknown profile type %d", p.ProfileType)
}

func boundingSpec(bounding []string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: bounding}}}
}

// defaultProfiles caches the default profile by bounding set: building it walks ~70 rules and allocates a lot,
// on the CreateContainer path. Containers use a handful of capability sets; the bound only stops a client
// that makes up many from growing it without end.
var defaultProfiles struct {
	sync.Mutex
	m map[string]*specs.LinuxSeccomp
}

const maxDefaultProfiles = 64

func defaultSeccomp(bounding []string) (*specs.LinuxSeccomp, error) {
	key := strings.Join(bounding, ",")
	defaultProfiles.Lock()
	p, ok := defaultProfiles.m[key]
	defaultProfiles.Unlock()
	if !ok {
		var err error
		if p, err = seccomp.GetDefaultProfile(boundingSpec(bounding)); err != nil {
			return nil, fmt.Errorf("build default seccomp profile: %w", err)
		}
		defaultProfiles.Lock()
		if defaultProfiles.m == nil || len(defaultProfiles.m) >= maxDefaultProfiles {
			defaultProfiles.m = map[string]*specs.LinuxSeccomp{}
		}
		defaultProfiles.m[key] = p
		defaultProfiles.Unlock()
	}
	return cloneSeccomp(p), nil
}

// cloneSeccomp copies the slices of a cached profile so a caller changing its spec cannot change the cache.
func cloneSeccomp(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	c := *p
	c.DefaultErrnoRet = clonePtr(p.DefaultErrnoRet)
	c.Architectures = slices.Clone(p.Architectures)
	c.Flags = slices.Clone(p.Flags)
	c.Syscalls = slices.Clone(p.Syscalls)
	for i := range c.Syscalls {
		c.Syscalls[i].Names = slices.Clone(c.Syscalls[i].Names)
		c.Syscalls[i].Args = slices.Clone(c.Syscalls[i].Args)
		c.Syscalls[i].ErrnoRet = clonePtr(c.Syscalls[i].ErrnoRet)
	}
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	return ptr(*p)
}
