package runc

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// Helper runs one libcontainer operation (ctr.Op*) in a short-lived process, as containerd's shim runs
// the runc binary: libcontainer's code, the OCI spec's decoding and libcontainer's JSON stay out of the
// long-lived processes (berthd and the pod monitors). args follow ctr.HelperArg. It writes a
// ctr.Result line on stdout and returns the process exit code.
//
// A container's init, a child of the create helper, is reparented to the pod monitor, a subreaper, when the
// helper exits; an exec'd process is the exec helper's child and the helper waits for it.
func Helper(args []string) int {
	fs := flag.NewFlagSet(ctr.HelperArg, flag.ContinueOnError)
	root := fs.String("root", "", "libcontainer state root")
	id := fs.String("id", "", "container id")
	systemd := fs.Bool("systemd", false, "use the systemd cgroup driver")
	bundle := fs.String("bundle", "", "create: the bundle directory")
	stdin := fs.Bool("stdin", false, "create, exec: the process's stdin is a descriptor too")
	tty := fs.Bool("tty", false, "create, exec: give the process a terminal; the descriptor is the console socket")
	resources := fs.String("resources", "", "update: the OCI spec's linux.resources, as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *root == "" || *id == "" || fs.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s -root <dir> -id <container> [-systemd] [-bundle <dir>] [-stdin|-tty] [-resources <json>] create|start|destroy|exec|update\n", ctr.HelperArg)
		return 2
	}
	rt := &Runtime{Root: *root, Systemd: *systemd}
	var res ctr.Result
	var err error
	switch op := fs.Arg(0); op {
	case ctr.OpCreate:
		res, err = helperCreate(rt, *id, *bundle, *stdin, *tty)
	case ctr.OpDestroy:
		err = rt.Destroy(*id)
	case ctr.OpStart:
		err = onLoaded(rt, *id, (*Container).Start)
	case ctr.OpExec:
		res, err = helperExec(rt, *id, *stdin, *tty)
	case ctr.OpUpdate:
		err = helperUpdate(rt, *id, *resources)
	default:
		err = errdefs.InvalidArgument("operation", "unknown %q", op)
	}
	code := 0
	if err != nil {
		res.Error, res.Kind, code = err.Error(), errdefs.Kind(err), 1
	}
	b, _ := json.Marshal(res)
	if _, werr := os.Stdout.Write(append(b, '\n')); werr != nil {
		return 1
	}
	return code
}

func onLoaded(rt *Runtime, id string, fn func(*Container) error) error {
	c, err := rt.Load(id)
	if err != nil {
		return err
	}
	return fn(c)
}

// helperFiles hands out the descriptors from ctr.HelperFirstFD on, in order.
type helperFiles uintptr

func (h *helperFiles) next(name string) *os.File {
	f := os.NewFile(ctr.HelperFirstFD+uintptr(*h), name)
	*h++
	return f
}

func helperCreate(rt *Runtime, id, bundle string, stdin, tty bool) (ctr.Result, error) {
	var res ctr.Result
	if !filepath.IsAbs(bundle) {
		return res, errdefs.InvalidArgument("bundle", "%q is not an absolute path", bundle)
	}
	spec, err := readSpec(bundle)
	if err != nil {
		return res, err
	}
	if spec.Process != nil && spec.Process.Terminal != tty {
		return res, errdefs.InvalidArgument("tty", "%v but the spec's process.terminal is %v", tty, spec.Process.Terminal)
	}
	stdio := Stdio{Terminal: tty}
	var files helperFiles
	var consoleSock *os.File
	switch {
	case tty:
		consoleSock = files.next("console socket")
	case stdin:
		stdio.Stdin = files.next("stdin")
		fallthrough
	default:
		stdio.Stdout, stdio.Stderr = files.next("stdout"), files.next("stderr")
	}
	c, err := rt.Create(id, bundle, spec, stdio)
	if err != nil {
		return res, err
	}
	if consoleSock != nil {
		if err := ctr.SendFile(consoleSock, c.Console()); err != nil {
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

func readSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, errdefs.InvalidArgument("bundle", "%s: %v", bundle, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, errdefs.InvalidArgument("bundle", "%s/config.json: %v", bundle, err)
	}
	return &spec, nil
}

// helperExec runs the ctr.ExecProcess read from stdin. Anything after it on stdin, or its end, cancels
// the exec: the caller closes the pipe to cancel, and it closes when the caller dies.
func helperExec(rt *Runtime, id string, stdin, tty bool) (ctr.Result, error) {
	var res ctr.Result
	dec := json.NewDecoder(os.Stdin)
	var p ctr.ExecProcess
	if err := dec.Decode(&p); err != nil {
		return res, errdefs.InvalidArgument("exec process", "%v", err)
	}
	var stdio ExecIO
	var files helperFiles
	switch {
	case tty:
		stdio.ConsoleSocket = files.next("console socket")
	case stdin:
		stdio.Stdin = files.next("stdin")
		fallthrough
	default:
		stdio.Stdout, stdio.Stderr = files.next("stdout"), files.next("stderr")
	}
	c, err := rt.Load(id)
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, io.MultiReader(dec.Buffered(), os.Stdin))
		cancel()
	}()
	st, err := c.Exec(ctx, p, stdio)
	res.ExitCode, res.Signal = st.Code, int(st.Signal)
	return res, err
}

func helperUpdate(rt *Runtime, id, resources string) error {
	var r specs.LinuxResources
	if err := json.Unmarshal([]byte(resources), &r); err != nil {
		return errdefs.InvalidArgument("resources", "%v", err)
	}
	return onLoaded(rt, id, func(c *Container) error { return c.Update(&r) })
}
