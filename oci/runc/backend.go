package runc

import (
	"context"
	"fmt"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/ociruntime"
)

// backend runs the helper's operations: libcontainer in the helper's process (inProcess, runtime handlers "" and
// "runc") or an OCI runtime binary (oci/ociruntime, a configured RuntimeClass handler). Both leave the container's
// init a child of the helper's caller once the helper exits (the pod monitor, a subreaper, reaps it) and its
// state where oci/ctr reads it (<root>/<id>/state.json), so that nothing above the helper tells them apart.
type backend interface {
	Create(id, bundle string, spec *specs.Spec, hio ctr.HelperIO) (ctr.Result, error)
	Start(id string) error
	Destroy(id string) error
	Exec(ctx context.Context, id string, p ctr.ExecProcess, hio ctr.HelperIO) (ctr.ExitStatus, error)
	Update(id string, r *specs.LinuxResources) error
}

var (
	_ backend = inProcess{}
	_ backend = (*ociruntime.Runtime)(nil)
)

// inProcess is libcontainer, linked in the helper.
type inProcess struct{ rt *Runtime }

func (b inProcess) Create(id, bundle string, spec *specs.Spec, hio ctr.HelperIO) (ctr.Result, error) {
	var res ctr.Result
	stdio := Stdio{Terminal: hio.ConsoleSocket != nil, Stdin: hio.Stdin, Stdout: hio.Stdout, Stderr: hio.Stderr}
	c, err := b.rt.Create(id, bundle, spec, stdio)
	if err != nil {
		return res, err
	}
	if hio.ConsoleSocket != nil {
		if err := ctr.SendFile(hio.ConsoleSocket, c.Console()); err != nil {
			c.Destroy()
			return res, fmt.Errorf("container %s: send terminal: %w", id, err)
		}
	}
	st, err := c.State()
	if err != nil {
		c.Destroy()
		return res, err
	}
	res.Pid, res.SharesPIDNamespace, res.CgroupPaths = st.Pid, c.SharesPIDNamespace(), st.CgroupPaths
	return res, nil
}

func (b inProcess) Start(id string) error { return b.onLoaded(id, (*Container).Start) }

func (b inProcess) Destroy(id string) error { return b.rt.Destroy(id) }

func (b inProcess) Exec(ctx context.Context, id string, p ctr.ExecProcess, hio ctr.HelperIO) (ctr.ExitStatus, error) {
	c, err := b.rt.Load(id)
	if err != nil {
		return ctr.ExitStatus{}, err
	}
	return c.Exec(ctx, p, ExecIO{Stdin: hio.Stdin, Stdout: hio.Stdout, Stderr: hio.Stderr, ConsoleSocket: hio.ConsoleSocket})
}

func (b inProcess) Update(id string, r *specs.LinuxResources) error {
	return b.onLoaded(id, func(c *Container) error { return c.Update(r) })
}

func (b inProcess) onLoaded(id string, fn func(*Container) error) error {
	c, err := b.rt.Load(id)
	if err != nil {
		return err
	}
	return fn(c)
}
