package runc

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/ociruntime"
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
	root := fs.String("root", "", "libcontainer state root (with -binary: berth's records of the runtime's containers)")
	id := fs.String("id", "", "container id")
	systemd := fs.Bool("systemd", false, "use the systemd cgroup driver")
	binary := fs.String("binary", "", "run this OCI runtime binary instead of libcontainer")
	binaryRoot := fs.String("binary-root", "", "with -binary: the runtime's --root")
	var binaryArgs stringList
	fs.Var(&binaryArgs, "binary-arg", "with -binary: a global option of the runtime (repeatable)")
	bundle := fs.String("bundle", "", "create: the bundle directory")
	stdin := fs.Bool("stdin", false, "create, exec: the process's stdin is a descriptor too")
	tty := fs.Bool("tty", false, "create, exec: give the process a terminal; the descriptor is the console socket")
	resources := fs.String("resources", "", "update: the OCI spec's linux.resources, as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *root == "" || *id == "" || fs.NArg() != 1 || (*binary != "" && *binaryRoot == "") {
		fmt.Fprintf(os.Stderr, "usage: %s -root <dir> -id <container> [-systemd] [-binary <path> -binary-root <dir> [-binary-arg <arg>]…] [-bundle <dir>] [-stdin|-tty] [-resources <json>] create|start|destroy|exec|update\n", ctr.HelperArg)
		return 2
	}
	var b backend = inProcess{&Runtime{Root: *root, Systemd: *systemd}}
	if *binary != "" {
		b = &ociruntime.Runtime{Records: *root, Systemd: *systemd,
			Binary: ctr.Binary{Path: *binary, Root: *binaryRoot, ExtraArgs: binaryArgs}}
	}
	var res ctr.Result
	var err error
	switch op := fs.Arg(0); op {
	case ctr.OpCreate:
		res, err = helperCreate(b, *id, *bundle, *stdin, *tty)
	case ctr.OpDestroy:
		err = b.Destroy(*id)
	case ctr.OpStart:
		err = b.Start(*id)
	case ctr.OpExec:
		res, err = helperExec(b, *id, *stdin, *tty)
	case ctr.OpUpdate:
		err = helperUpdate(b, *id, *resources)
	default:
		err = errdefs.InvalidArgument("operation", "unknown %q", op)
	}
	code := 0
	if err != nil {
		res.Error, res.Kind, code = err.Error(), errdefs.Kind(err), 1
	}
	b2, _ := json.Marshal(res)
	if _, werr := os.Stdout.Write(append(b2, '\n')); werr != nil {
		return 1
	}
	return code
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// helperFiles hands out the descriptors from ctr.HelperFirstFD on, in order.
type helperFiles uintptr

func (h *helperFiles) next(name string) *os.File {
	f := os.NewFile(ctr.HelperFirstFD+uintptr(*h), name)
	*h++
	return f
}

// helperIO names the descriptors the caller passed, in ctr.HelperFirstFD's order.
func helperIO(stdin, tty bool) ctr.HelperIO {
	var hio ctr.HelperIO
	var files helperFiles
	switch {
	case tty:
		hio.ConsoleSocket = files.next("console socket")
	case stdin:
		hio.Stdin = files.next("stdin")
		fallthrough
	default:
		hio.Stdout, hio.Stderr = files.next("stdout"), files.next("stderr")
	}
	return hio
}

func helperCreate(b backend, id, bundle string, stdin, tty bool) (ctr.Result, error) {
	if !filepath.IsAbs(bundle) {
		return ctr.Result{}, errdefs.InvalidArgument("bundle", "%q is not an absolute path", bundle)
	}
	spec, err := readSpec(bundle)
	if err != nil {
		return ctr.Result{}, err
	}
	if spec.Process != nil && spec.Process.Terminal != tty {
		return ctr.Result{}, errdefs.InvalidArgument("tty", "%v but the spec's process.terminal is %v", tty, spec.Process.Terminal)
	}
	res, err := b.Create(id, bundle, spec, helperIO(stdin, tty))
	res.DestroyNeedsHelper = spec.Linux != nil && spec.Linux.IntelRdt != nil || spec.Hooks != nil && len(spec.Hooks.Poststop) > 0
	return res, err
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
func helperExec(b backend, id string, stdin, tty bool) (ctr.Result, error) {
	var res ctr.Result
	dec := json.NewDecoder(os.Stdin)
	var p ctr.ExecProcess
	if err := dec.Decode(&p); err != nil {
		return res, errdefs.InvalidArgument("exec process", "%v", err)
	}
	p.Terminal = tty
	hio := helperIO(stdin, tty)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, io.MultiReader(dec.Buffered(), os.Stdin))
		cancel()
	}()
	st, err := b.Exec(ctx, id, p, hio)
	res.ExitCode, res.Signal = st.Code, int(st.Signal)
	return res, err
}

func helperUpdate(b backend, id, resources string) error {
	var r specs.LinuxResources
	if err := json.Unmarshal([]byte(resources), &r); err != nil {
		return errdefs.InvalidArgument("resources", "%v", err)
	}
	return b.Update(id, &r)
}
