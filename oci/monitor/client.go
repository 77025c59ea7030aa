package monitor

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
	"github.com/berthcri/berth/internal/tail"
	"github.com/berthcri/berth/oci/ctr"
)

// StartOptions describe the monitor of one pod.
type StartOptions struct {
	PodID string
	Dir   string // the pod's runtime directory, <state>/pods/<id>; created if missing
	// RuncRoot is libcontainer's state root, <state>/runc; with Runtime, berth's records of that runtime's
	// containers.
	RuncRoot string
	// Runtime, when its Path is set, runs the pod's containers with that OCI runtime binary (a RuntimeClass
	// handler) instead of libcontainer, still under the monitor.
	Runtime ctr.Binary
	// CgroupPath is the pod's cgroup (cgroupfs path, or the slice with Systemd); the monitor and the
	// pause process live in <CgroupPath>/berth-monitor (a berth-monitor-<pod>.scope with systemd).
	// Empty leaves the monitor in berthd's cgroup.
	CgroupPath string
	Systemd    bool
	// NeedPause runs the pod's PID-namespace init; its pid is Client.PausePid.
	NeedPause bool
	// PauseUserNS, with NeedPause and mappings, starts the pause process in a new user namespace: a pod's own
	// (KEP-127), which owns the pause process's PID namespace and the other namespaces made with it.
	PauseUserNS UserNamespace
	// Binary is the monitor's executable, cmd/berth-monitor: DefaultBinary() for berthd.
	Binary string
	// Groups are the monitor's supplementary groups, and those of the runc helpers and the pause process it starts
	// (none when empty): with a user namespace, the group that lets the pod's root traverse the state dirs (runc
	// does not set groups when its init joins a user namespace; the pause process and the container process drop
	// them before they run anything of the pod's).
	Groups []uint32
}

// Client talks to one pod's monitor. It holds no connection: each call dials the socket, so a Client
// stays valid as long as the monitor runs. It holds pidfds of the monitor and its pause process, checked against
// the start times the monitor reports: Wait and WaitPause learn of their deaths, and the pause's namespaces are
// never taken from a later process given its pid. Close releases them.
type Client struct {
	dir      string
	pid      int
	pausePid int
	proc     *process
	pause    *process // nil without a pause process, or when it was gone at Connect (pauseErr)
	pauseErr error
	stopping atomic.Bool // Shutdown was called
}

// connectTimeout bounds Connect's handshake.
const connectTimeout = 5 * time.Second

// requestTimeout bounds one request's exchange with the monitor when the caller's context allows longer or has no
// deadline (recovery, a client without one): a monitor that accepts and never answers must not hold berthd. Above
// the helper timeout (oci/ctr), which bounds the slowest request, a create. A variable for the tests.
var requestTimeout = 2 * time.Minute

// Start starts the monitor of a pod and connects to it. The monitor runs in its own session and is
// reaped by the caller if it exits while the caller lives. A monitor already answering in o.Dir is an
// error wrapping errdefs.ErrAlreadyExists.
func Start(ctx context.Context, o StartOptions) (*Client, error) {
	if !filepath.IsAbs(o.Dir) {
		return nil, errdefs.InvalidArgument("dir", "%q is not an absolute path", o.Dir)
	}
	if o.RuncRoot == "" {
		return nil, errdefs.InvalidArgument("runc root", "empty")
	}
	if err := checkBinary(o.Binary); err != nil {
		return nil, err
	}
	if c, err := Connect(o.Dir); err == nil {
		c.Close()
		return nil, fmt.Errorf("monitor in %s: %w", o.Dir, errdefs.ErrAlreadyExists)
	}
	// A pod dir made by the caller keeps its mode (0710 to a user-namespaced pod's root).
	if _, err := os.Lstat(o.Dir); errors.Is(err, fs.ErrNotExist) {
		if err := privdir.Make(o.Dir, privdir.Private); err != nil {
			return nil, fmt.Errorf("monitor dir: %w", err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(o.Dir, LogFileName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("monitor log: %w", err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()

	args := []string{Arg, "-dir", o.Dir, "-runc-root", o.RuncRoot, "-ready-fd", "3"}
	if o.PodID != "" {
		args = append(args, "-pod", o.PodID)
	}
	if o.CgroupPath != "" {
		args = append(args, "-cgroup", o.CgroupPath)
	}
	if o.Systemd {
		args = append(args, "-systemd")
	}
	if r := o.Runtime; r.Path != "" {
		args = append(args, "-runtime-binary", r.Path, "-runtime-root", r.Root)
		for _, a := range r.ExtraArgs {
			args = append(args, "-runtime-arg="+a)
		}
	}
	if o.NeedPause {
		args = append(args, "-pause")
		args = append(args, o.PauseUserNS.args()...)
	}
	cmd := exec.Command(o.Binary, args...)
	cmd.Dir = "/"
	cmd.Env = monitorEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{readyW}
	pidfd := -1
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd,
		Credential: &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: o.Groups}}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	if pidfd >= 0 {
		startedMonitors.add(cmd.Process.Pid, pidfd)
	} else {
		go cmd.Process.Wait() // no pidfd from clone (Linux < 5.2): a thread blocked in waitid
	}

	msg, err := readReady(ctx, readyR)
	if err == nil && msg != "ok" {
		err = fmt.Errorf("%s (see %s)", strings.TrimPrefix(msg, "error: "), filepath.Join(o.Dir, LogFileName))
		if msg == "" {
			err = fmt.Errorf("exited before it was ready (see %s)", filepath.Join(o.Dir, LogFileName))
		}
	}
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	return Connect(o.Dir)
}

// monitorEnv is berthd's environment without what systemd meant for berthd alone, and with one P.
func monitorEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "GOMAXPROCS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOMAXPROCS=1")
}

// readyMessageSize bounds what berthd keeps of the monitor's ready message: "ok" or "error: <why>".
const readyMessageSize = 4096

// readReady reads the ready pipe until the monitor closes it (ready, or exited).
func readReady(ctx context.Context, r *os.File) (string, error) {
	type result struct {
		msg string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := tail.Read(r, readyMessageSize)
		ch <- result{b.String(), err}
	}()
	select {
	case res := <-ch:
		return res.msg, res.err
	case <-ctx.Done():
		r.Close()
		return "", ctx.Err()
	}
}

// Connect connects to the monitor running in dir, e.g. after berthd restarted. An error wraps
// errdefs.ErrUnavailable when no monitor answers.
func Connect(dir string) (*Client, error) {
	c := &Client{dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	resp, err := c.call(ctx, request{Op: opHello})
	if err != nil {
		return nil, err
	}
	if resp.Hello == nil {
		return nil, fmt.Errorf("monitor %s: no hello", dir)
	}
	c.pid, c.pausePid = resp.Hello.Pid, resp.Hello.PausePid
	if c.proc, err = openProcess(c.pid, resp.Hello.Start); err != nil {
		return nil, fmt.Errorf("monitor %s: %w: %w", dir, errdefs.ErrUnavailable, err)
	}
	if c.pausePid > 0 {
		c.pause, c.pauseErr = openProcess(c.pausePid, resp.Hello.PauseStart)
	}
	return c, nil
}

// Close releases the Client's pidfds; the monitor is not touched. Waits in progress return an error.
func (c *Client) Close() error {
	err := c.proc.close()
	if c.pause != nil {
		err = errors.Join(err, c.pause.close())
	}
	return err
}

// Stopping says whether Shutdown was called: the exits of the monitor and its pause that follow were asked for.
func (c *Client) Stopping() bool { return c.stopping.Load() }

// Wait returns nil once the monitor process has exited, an error when ctx ends or the Client is closed first.
func (c *Client) Wait(ctx context.Context) error { return c.proc.wait(ctx) }

// WaitPause returns nil once the pause process has exited (at once when it was gone at Connect), an error when ctx
// ends or the Client is closed first, or wrapping errdefs.ErrNotFound when the pod has no pause process.
func (c *Client) WaitPause(ctx context.Context) error {
	switch {
	case c.pause != nil:
		return c.pause.wait(ctx)
	case c.pauseErr != nil:
		return nil
	}
	return fmt.Errorf("monitor %s: no pause process: %w", c.dir, errdefs.ErrNotFound)
}

// CheckPause is nil when the pod has no pause process or it runs, else an error wrapping
// errdefs.ErrFailedPrecondition: the pod's PID namespace is gone.
func (c *Client) CheckPause() error {
	if c.pauseErr != nil || c.pause != nil && c.pause.exited() {
		return fmt.Errorf("pod %s: the pause process %d (the pod's PID namespace init) has exited: %w",
			filepath.Base(c.dir), c.pausePid, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// PauseNamespace opens the pause process's namespace of kind: "pid", "user", "net", "ipc" or "uts". A pause
// process that has exited, or none, is an error wrapping errdefs.ErrFailedPrecondition.
func (c *Client) PauseNamespace(kind string) (*os.File, error) {
	if err := c.CheckPause(); err != nil {
		return nil, err
	}
	if c.pause == nil {
		return nil, fmt.Errorf("monitor %s: no pause process: %w", c.dir, errdefs.ErrFailedPrecondition)
	}
	return c.pause.namespace(kind)
}

// Dir is the pod directory of the monitor.
func (c *Client) Dir() string { return c.dir }

// Pid is the monitor's pid.
func (c *Client) Pid() int { return c.pid }

// PausePid is the pid of the pod's PID-namespace init, 0 if it has none. Signal it, or open its namespaces,
// through PauseNamespace only: the pid may be another process's once the pause has exited.
func (c *Client) PausePid() int { return c.pausePid }

// Create creates a container from its bundle; it is "created" (its process waits for Start).
func (c *Client) Create(ctx context.Context, r CreateRequest) error {
	_, err := c.call(ctx, request{Op: opCreate, ID: r.ID, Create: &r})
	return err
}

// Start runs a created container's process.
func (c *Client) Start(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{Op: opStart, ID: id})
	return err
}

// Signal sends sig to the container's init process; SIGKILL goes to every process of the container.
// A container that has exited is not an error.
func (c *Client) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	_, err := c.call(ctx, request{Op: opSignal, ID: id, Signal: int(sig)})
	return err
}

// State lists the monitor's containers, sorted by id.
func (c *Client) State(ctx context.Context) ([]ContainerState, error) {
	resp, err := c.call(ctx, request{Op: opState})
	if err != nil {
		return nil, err
	}
	return resp.Containers, nil
}

// Remove kills the container if it runs, destroys it (cgroup, libcontainer state) and forgets it. It
// succeeds for an unknown id.
func (c *Client) Remove(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{Op: opRemove, ID: id})
	return err
}

// ReopenLog reopens the container's log file after the kubelet rotated it.
func (c *Client) ReopenLog(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{Op: opReopenLog, ID: id})
	return err
}

// Shutdown removes every container left, stops the pause process and waits for the monitor to exit.
func (c *Client) Shutdown(ctx context.Context) error {
	c.stopping.Store(true)
	if _, err := c.call(ctx, request{Op: opShutdown}); err != nil {
		return err
	}
	if err := c.proc.wait(ctx); err != nil {
		return fmt.Errorf("wait for monitor %d to exit: %w", c.pid, err)
	}
	return nil
}

// Attach streams the container's output to stdout and stderr (nil: not wanted; with a terminal
// everything is stdout) and stdin to the container, with terminal resizes, until the container exits
// (nil error) or ctx ends. Attach does not wait for stdin: its copy ends at the next Read.
func (c *Client) Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan Size) error {
	opts := &attachOpts{Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil}
	conn, br, _, err := c.open(ctx, request{Op: opAttach, ID: id, Attach: opts})
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	done := make(chan struct{})
	defer close(done)

	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(conn, typ, p)
	}
	if stdin != nil {
		go func() {
			buf := make([]byte, maxFrame)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && send(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					send(frameStdinClose, nil)
					return
				}
			}
		}()
	}
	if resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-resize:
					if !ok {
						return
					}
					var b [4]byte
					binary.BigEndian.PutUint16(b[0:2], sz.Width)
					binary.BigEndian.PutUint16(b[2:4], sz.Height)
					if send(frameResize, b[:]) != nil {
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	buf := make([]byte, maxFrame)
	for {
		typ, p, err := readFrame(br, buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("attach %s: %w", id, ctx.Err())
			}
			return fmt.Errorf("attach %s: monitor connection lost: %v: %w", id, err, errdefs.ErrUnavailable)
		}
		switch typ {
		case frameStdout:
			if stdout != nil {
				stdout.Write(p)
			}
		case frameStderr:
			if stderr != nil {
				stderr.Write(p)
			}
		case frameExit:
			return nil
		}
	}
}

func (c *Client) call(ctx context.Context, req request) (*response, error) {
	conn, _, resp, err := c.open(ctx, req)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return resp, nil
}

// open sends req and reads the response; the connection stays open for what follows it (attach).
func (c *Client) open(ctx context.Context, req request) (*net.UnixConn, *bufio.Reader, *response, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var d net.Dialer
	var nc net.Conn
	err := withSocketPath(c.dir, func(addr string) (err error) {
		nc, err = d.DialContext(ctx, "unix", addr)
		return err
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("monitor %s: %w: %v", c.dir, errdefs.ErrUnavailable, err)
	}
	conn := nc.(*net.UnixConn)
	fail := func(err error) (*net.UnixConn, *bufio.Reader, *response, error) {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if errors.Is(err, os.ErrDeadlineExceeded) { // ctx's deadline, reached on the conn a moment earlier
			err = context.DeadlineExceeded
		} else if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			err = fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
		}
		return nil, nil, nil, fmt.Errorf("monitor %s %s: %w", c.dir, req.Op, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A cancelled ctx without deadline still interrupts the exchange.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeLine(conn, req); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	var resp response
	if err := readLine(br, &resp); err != nil {
		return fail(err)
	}
	if !stop() && ctx.Err() != nil {
		return fail(ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	if err := responseErr(req.Op, &resp); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return conn, br, &resp, nil
}
