package runc

import (
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// Update applies new resource limits to a created or running container. Device rules are kept: the
// CRI update carries none.
func (c *Container) Update(r *specs.LinuxResources) error {
	if r == nil {
		return errdefs.InvalidArgument("resources", "nil")
	}
	cfg := c.lc.Config()
	conv, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{
		CgroupName: c.ID(),
		Spec:       &specs.Spec{Linux: &specs.Linux{Resources: r}},
	}, nil)
	if err != nil {
		return errdefs.InvalidArgument("resources", "container %s: %v", c.ID(), err)
	}
	res := *conv.Resources
	res.Devices = cfg.Cgroups.Resources.Devices
	cg := *cfg.Cgroups
	cg.Resources = &res
	cfg.Cgroups = &cg
	if err := c.lc.Set(cfg); err != nil {
		return wrapErr(c.ID(), "update resources", err)
	}
	return nil
}
