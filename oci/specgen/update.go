package specgen

import "github.com/opencontainers/runtime-spec/specs-go"

// Resources maps CRI resources onto the spec's cgroup settings exactly as Spec does at creation, for
// UpdateContainerResources. Device rules are not part of them.
func Resources(r *LinuxContainerResources, host Host) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if err := resources(r, &host, out); err != nil {
		return nil, err
	}
	return out, nil
}
