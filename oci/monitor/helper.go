package monitor

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/runc"
)

// The monitor runs each libcontainer operation in a short-lived child process, "berth-monitor runc <op>"
// (Helper), as containerd's shim runs runc: libcontainer's code, the OCI spec's decoding and its JSON
// encoding of the container config would otherwise stay in every monitor's heap for the pod's life
// (~0.8 MiB measured per idle monitor) for work done once per container. The container's init, a child of
// the helper, is reparented to the monitor, a subreaper, when the helper exits; the monitor holds a pidfd
// of it, signals it and reaps it.

// HelperArg is the first argument that makes berth-monitor run one libcontainer operation for its monitor.
const HelperArg = "runc"

// Helper operations.
const (
	helperCreate  = "create"  // create the container from its bundle; its init waits for start
	helperStart   = "start"   // run the created container's process
	helperKill    = "kill"    // SIGKILL to every process of the container's cgroup
	helperDestroy = "destroy" // kill what is left, remove the cgroup and libcontainer's state
)

// The create helper's files: stdin (with -stdin), stdout and stderr, or with -tty the socket on which it
// sends the terminal's master side.
const helperFirstFD = 3

// helperResult is the helper's one line of JSON on stdout.
type helperResult struct {
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Of create:
	Pid                int               `json:"pid,omitempty"`
	SharesPIDNamespace bool              `json:"shares_pid_namespace,omitempty"`
	CgroupPaths        map[string]string `json:"cgroup_paths,omitempty"` // runc.State.CgroupPaths
}

// Helper runs one operation; args follow HelperArg. It writes a helperResult and returns the process exit
// code.
func Helper(args []string) int {
	fs := flag.NewFlagSet(BinaryName+" "+HelperArg, flag.ContinueOnError)
	root := fs.String("root", "", "libcontainer state root")
	id := fs.String("id", "", "container id")
	systemd := fs.Bool("systemd", false, "use the systemd cgroup driver")
	bundle := fs.String("bundle", "", "create: the bundle directory")
	stdin := fs.Bool("stdin", false, "create: fd 3 is the container's stdin")
	tty := fs.Bool("tty", false, "create: give the container a terminal and send its master side on fd 3")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *root == "" || *id == "" || fs.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s %s -root <dir> -id <container> [-systemd] [-bundle <dir> [-stdin|-tty]] create|start|kill|destroy\n", BinaryName, HelperArg)
		return 2
	}
	rt := &runc.Runtime{Root: *root, Systemd: *systemd}
	var res helperResult
	var err error
	switch op := fs.Arg(0); op {
	case helperCreate:
		res, err = helperCreateContainer(rt, *id, *bundle, *stdin, *tty)
	case helperDestroy:
		err = rt.Destroy(*id)
	case helperStart:
		err = onLoaded(rt, *id, (*runc.Container).Start)
	case helperKill:
		err = onLoaded(rt, *id, func(c *runc.Container) error { return c.Signal(unix.SIGKILL, true) })
	default:
		err = errdefs.InvalidArgument("operation", "unknown %q", op)
	}
	code := 0
	if err != nil {
		res.Error, res.Kind, code = err.Error(), errKind(err), 1
	}
	if werr := writeLine(os.Stdout, res); werr != nil {
		return 1
	}
	return code
}

func onLoaded(rt *runc.Runtime, id string, fn func(*runc.Container) error) error {
	c, err := rt.Load(id)
	if err != nil {
		return err
	}
	return fn(c)
}

func helperCreateContainer(rt *runc.Runtime, id, bundle string, stdin, tty bool) (helperResult, error) {
	var res helperResult
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
	stdio := runc.Stdio{Terminal: tty}
	fd := uintptr(helperFirstFD)
	next := func(name string) *os.File {
		f := os.NewFile(fd, name)
		fd++
		return f
	}
	var consoleSock *os.File
	switch {
	case tty:
		consoleSock = next("console socket")
	case stdin:
		stdio.Stdin = next("stdin")
		fallthrough
	default:
		stdio.Stdout, stdio.Stderr = next("stdout"), next("stderr")
	}
	c, err := rt.Create(id, bundle, spec, stdio)
	if err != nil {
		return res, err
	}
	if consoleSock != nil {
		if err := sendFile(consoleSock, c.Console()); err != nil {
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

// runHelper runs one helper operation for container id, with files as its descriptors from 3 on. The
// caller holds s.reaper.starting for reading: the helper is waited for by pid, not by the reaper.
func (s *server) runHelper(op, id string, files []*os.File, args ...string) (helperResult, error) {
	args = append([]string{HelperArg, "-root", s.runcRoot, "-id", id}, args...)
	if s.systemd {
		args = append(args, "-systemd")
	}
	// /proc/self/exe: the monitor's own binary, even after berth-monitor was replaced on disk.
	cmd := exec.Command("/proc/self/exe", append(args, op)...)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr // libcontainer's log lines go to the monitor's log
	out, err := cmd.Output()
	var res helperResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		if err == nil {
			err = jerr
		}
		return res, fmt.Errorf("container %s: %s: helper: %w", id, op, err)
	}
	if res.Error != "" {
		return res, kindError(res.Error, res.Kind)
	}
	return res, nil
}

// sendFile sends f's descriptor on the unix socket sock.
func sendFile(sock, f *os.File) error {
	rc, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.Sendmsg(int(fd), []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0)
	})
	return errors.Join(err, serr)
}

// recvFile receives a descriptor sent with sendFile; EOF without one is an error.
func recvFile(sock *os.File, name string) (*os.File, error) {
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err = errors.Join(err, rerr); err != nil {
		return nil, fmt.Errorf("receive %s: %w", name, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive %s: %d control messages (%v)", name, len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive %s: %d descriptors (%v)", name, len(fds), err)
	}
	return os.NewFile(uintptr(fds[0]), name), nil
}
