// Package monitor is berth's per-pod monitor: "berth-monitor serve", started by berthd for each pod, in
// its own session and in the pod's cgroup. The monitor is the parent and subreaper of the pod's
// containers: it creates and starts them with libcontainer (oci/runc, run in helper processes through oci/ctr),
// holds their stdio, writes their CRI logs (oci/crilog), records each exit in <bundle>/exit.json, serves
// attach, and runs the pod's PID-namespace init (oci/pause) when the pod shares one. berthd can die and
// come back: it reconnects with Connect. The monitor exits on Shutdown, after destroying what is left of
// its containers.
//
// Every pod pays for its monitor's memory, so the monitor is its own small executable (cmd/berth-monitor,
// linking this package, oci/runc, oci/crilog and oci/pause only, not berthd's gRPC, image and CNI code),
// its long-lived process never runs libcontainer itself, and Main keeps the runtime small (runtime.go).
// berthd links this package for the client side (Start, Connect); it imports no libcontainer code.
package monitor

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
	"github.com/berthcri/berth/oci/ctr"
)

// Arg is the first argument that makes berth-monitor a monitor.
const Arg = "serve"

// cgroupName is the monitor's own cgroup under the pod cgroup: on cgroup v2 a cgroup with child
// cgroups cannot hold processes.
const cgroupName = "berth-monitor"

type config struct {
	dir, podID, runcRoot, cgroup string
	systemd, pause               bool
	pauseUserNS                  UserNamespace
	readyFD                      int
	pauseCommand                 func(binary, dir string) *exec.Cmd
	runtime                      ctr.Binary // a RuntimeClass handler's OCI runtime; no Path: libcontainer
}

// Main runs the monitor; args follow Arg. pause is oci/pause.Command, passed in by the monitor's
// executable, which links oci/pause's C constructor (berthd, which imports this package, does not). Main
// returns the process exit code.
func Main(args []string, pause func(binary, dir string) *exec.Cmd) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	unix.Umask(0o022) // whoever started it: no group or world write bits on what it creates
	var cfg config
	fs := flag.NewFlagSet("berth-monitor "+Arg, flag.ContinueOnError)
	fs.StringVar(&cfg.dir, "dir", "", "pod runtime directory")
	fs.StringVar(&cfg.podID, "pod", "", "pod id")
	fs.StringVar(&cfg.runcRoot, "runc-root", "", "libcontainer state root")
	fs.StringVar(&cfg.cgroup, "cgroup", "", "pod cgroup (a slice with -systemd); the monitor joins a cgroup below it")
	fs.BoolVar(&cfg.systemd, "systemd", false, "use the systemd cgroup driver")
	fs.BoolVar(&cfg.pause, "pause", false, "run a PID-namespace init for the pod")
	fs.StringVar(&cfg.runtime.Path, "runtime-binary", "", "run the pod's containers with this OCI runtime binary, not libcontainer")
	fs.StringVar(&cfg.runtime.Root, "runtime-root", "", "with -runtime-binary: its --root")
	fs.Func("runtime-arg", "with -runtime-binary: a global option of it (repeatable)", func(a string) error {
		cfg.runtime.ExtraArgs = append(cfg.runtime.ExtraArgs, a)
		return nil
	})
	cfg.pauseUserNS.flags(fs)
	fs.IntVar(&cfg.readyFD, "ready-fd", -1, "file descriptor to report readiness on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.dir == "" || cfg.runcRoot == "" || fs.NArg() > 0 || (cfg.runtime.Path != "" && cfg.runtime.Root == "") {
		fmt.Fprintln(os.Stderr, "usage: berth-monitor serve -dir <pod dir> -runc-root <dir> [-pod id] [-cgroup path] [-systemd] [-pause [-pause-uids c:h:n,… -pause-gids c:h:n,… [-pause-unshare net,ipc,uts]]] [-runtime-binary <path> -runtime-root <dir> [-runtime-arg <arg>]…] [-ready-fd n]")
		return 2
	}
	cfg.pauseCommand = pause
	tuneRuntime()
	log = log.With("pod", cfg.podID)

	var ready *os.File
	if cfg.readyFD >= 0 {
		// Not inherited by the pause process: Start reads until every copy is closed.
		unix.CloseOnExec(cfg.readyFD)
		ready = os.NewFile(uintptr(cfg.readyFD), "ready")
	}
	s, err := newServer(cfg, log)
	if ready != nil {
		msg := "ok\n"
		if err != nil {
			msg = "error: " + err.Error() + "\n"
		}
		ready.WriteString(msg)
		ready.Close()
	}
	if err != nil {
		log.Error("monitor failed to start", "err", err)
		return 1
	}
	log.Info("monitor started", "pid", os.Getpid(), "pause_pid", s.pausePid)
	s.serve()
	s.cleanup()
	log.Info("monitor exiting")
	return 0
}

type server struct {
	dir string
	// helpers runs each libcontainer operation in a short-lived child, "/proc/self/exe runc <op>"
	// (oci/runc.Helper), as containerd's shim runs runc: libcontainer's code, the OCI spec's decoding and its
	// JSON encoding of the container config would otherwise stay in every monitor's heap for the pod's life
	// (~0.8 MiB measured per idle monitor) for work done once per container. The container's init, a child of
	// the helper, is reparented to the monitor, a subreaper, when the helper exits; the monitor holds a pidfd
	// of it, signals it and reaps it. Callers hold reaper.starting for reading: a helper is waited for by pid,
	// not by the reaper.
	helpers   *ctr.Runtime
	reaper    *reaper
	oom       *oomWatch // cgroup v2 only; nil: OOM kills are read at init's exit only
	log       *slog.Logger
	ln        *net.UnixListener
	pausePid  int
	pause     *process      // pidfd of the pause process, from its clone: never signalled by pid
	pauseGone chan struct{} // closed once the pause process was reaped
	// startTime and pauseStart are the start times of the monitor and its pause process (ctr.ProcessStart), which
	// hello reports so that berthd can tell them from later processes given their pids.
	startTime, pauseStart uint64

	trim trimmer

	mu         sync.Mutex
	containers map[string]*container
	closing    bool
}

func newServer(cfg config, log *slog.Logger) (*server, error) {
	if cfg.cgroup != "" {
		if err := joinCgroup(cfg.cgroup, cfg.systemd, cfg.podID); err != nil {
			return nil, err
		}
	}
	r, err := newReaper()
	if err != nil {
		return nil, err
	}
	s := &server{
		dir: cfg.dir,
		// /proc/self/exe: the monitor's own binary, even after berth-monitor was replaced on disk.
		helpers:    &ctr.Runtime{Root: cfg.runcRoot, Systemd: cfg.systemd, Helper: "/proc/self/exe", Binary: cfg.runtime},
		reaper:     r,
		log:        log,
		containers: make(map[string]*container),
		startTime:  ctr.ProcessStart(os.Getpid()),
	}
	if cgroups.IsCgroup2UnifiedMode() {
		if s.oom, err = newOOMWatch(); err != nil {
			log.Warn("no OOM watch: kills are read at exit only", "err", err)
		}
	}
	if cfg.pause {
		if err := s.startPause(cfg.pauseCommand, cfg.pauseUserNS); err != nil {
			return nil, err
		}
	}
	// Bound in a private dir and renamed into the pod dir: that one may be 0710 to a user-namespaced pod's root.
	if s.ln, err = privdir.Listen(filepath.Join(cfg.dir, SocketName), 0o600); err != nil {
		s.stopPause()
		return nil, err
	}
	if err := writePidFile(filepath.Join(cfg.dir, PidFileName), os.Getpid()); err != nil {
		s.ln.Close()
		s.stopPause()
		return nil, err
	}
	return s, nil
}

func joinCgroup(path string, systemd bool, podID string) error {
	cg := &cgroups.Cgroup{Resources: &cgroups.Resources{}}
	if systemd {
		cg.Systemd, cg.Parent, cg.ScopePrefix, cg.Name = true, path, cgroupName, podID
	} else {
		// One leaf per pod: pods may share a cgroup parent (a re-created sandbox, or a parent like /test.slice).
		cg.Path = filepath.Join(path, cgroupName+"-"+podID)
	}
	m, err := manager.New(cg)
	if err == nil {
		err = m.Apply(os.Getpid())
	}
	if err != nil {
		return fmt.Errorf("join pod cgroup %s: %w", path, err)
	}
	return nil
}

// startPause runs the pod's PID-namespace init, a child of the monitor in the pod cgroup, in a new PID namespace;
// with userns set, also in a new user namespace owning it and the namespaces userns.Unshare names.
func (s *server) startPause(command func(binary, dir string) *exec.Cmd, userns UserNamespace) error {
	// The pause process chroots there as the pod's root, when the pod has its own user namespace.
	dir := filepath.Join(s.dir, PauseDirName)
	if err := privdir.Make(dir, userns.rootGID()); err != nil {
		return fmt.Errorf("pause dir: %w", err)
	}
	// /proc/self/exe: the monitor's own binary, even after berth-monitor was replaced on disk.
	cmd := command("/proc/self/exe", dir)
	if err := userns.apply(cmd.SysProcAttr); err != nil {
		return fmt.Errorf("start pause: %w", err)
	}
	pidfd := -1
	cmd.SysProcAttr.PidFD = &pidfd
	s.reaper.starting.RLock()
	err := cmd.Start()
	var exit <-chan unix.WaitStatus
	if err == nil {
		s.pausePid = cmd.Process.Pid
		exit = s.reaper.watch(s.pausePid)
		// Not reaped while starting is held: the pid is still the pause's.
		s.pauseStart = ctr.ProcessStart(s.pausePid)
		s.pause, err = newProcess(s.pausePid, pidfd)
		if err != nil {
			unix.Kill(s.pausePid, unix.SIGKILL)
		}
	}
	s.reaper.starting.RUnlock()
	if err != nil {
		s.pausePid = 0
		return fmt.Errorf("start pause: %w", err)
	}
	cmd.Process.Release() // the reaper waits for it
	s.pauseGone = make(chan struct{})
	go func() {
		if ws, ok := <-exit; ok {
			s.log.Info("pause process exited", "status", waitString(ws))
		}
		close(s.pauseGone)
	}()
	if err := writePidFile(filepath.Join(s.dir, PausePidName), s.pausePid); err != nil {
		s.stopPause()
		return err
	}
	return nil
}

// pauseReapTimeout bounds stopPause's wait for the reaper.
const pauseReapTimeout = 5 * time.Second

// stopPause kills the pause process through its pidfd, which a pause that already exited leaves without effect
// (by pid, the signal would reach whatever process has the pid now), and waits until it was reaped.
func (s *server) stopPause() {
	if s.pause == nil {
		return
	}
	if err := s.pause.signal(unix.SIGKILL); err != nil && !errors.Is(err, errExited) {
		s.log.Warn("kill pause process", "err", err)
	}
	select {
	case <-s.pauseGone:
	case <-time.After(pauseReapTimeout):
		s.log.Warn("pause process not reaped", "pid", s.pausePid)
	}
	s.pause.close()
	os.Remove(filepath.Join(s.dir, PausePidName))
	s.pause, s.pausePid = nil, 0
}

func (s *server) serve() {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		go s.handle(conn)
	}
}

func (s *server) cleanup() {
	os.Remove(filepath.Join(s.dir, SocketName))
	os.Remove(filepath.Join(s.dir, PidFileName))
}

func (s *server) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(conn, 4096)
	var req request
	if err := readLine(br, &req); err != nil {
		s.log.Warn("bad request", "err", err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	defer s.trim.active()
	if req.Op == opAttach {
		s.attach(conn, br, &req)
		return
	}
	var resp response
	var err error
	switch req.Op {
	case opHello:
		resp.Hello = &hello{Pid: os.Getpid(), PausePid: s.pausePid, Start: s.startTime, PauseStart: s.pauseStart}
	case opCreate:
		err = s.create(req.Create)
	case opStart:
		err = s.start(req.ID)
	case opSignal:
		err = s.signal(req.ID, syscall.Signal(req.Signal))
	case opState:
		resp.Containers = s.states()
	case opRemove:
		err = s.remove(req.ID)
	case opReopenLog:
		err = s.reopenLog(req.ID)
	case opShutdown:
		err = s.shutdown()
	default:
		err = errdefs.InvalidArgument("op", "unknown operation %q", req.Op)
	}
	if err != nil {
		resp = errResponse(err)
		if req.Op != opState {
			s.log.Warn("request failed", "op", req.Op, "id", req.ID, "err", err)
		}
	}
	writeLine(conn, resp)
	if req.Op == opShutdown && err == nil {
		s.ln.Close()
	}
}

func (s *server) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	return c, nil
}

func (s *server) states() []ContainerState {
	s.mu.Lock()
	cs := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]ContainerState, 0, len(cs))
	for _, c := range cs {
		if st, ok := c.state(); ok {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b ContainerState) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// shutdown destroys every container and the pause process; the caller then stops serving.
func (s *server) shutdown() error {
	s.mu.Lock()
	s.closing = true
	ids := make([]string, 0, len(s.containers))
	for id := range s.containers {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		if err := s.remove(id); err != nil {
			return err
		}
	}
	s.stopPause()
	return nil
}

func waitString(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit code %d", ws.ExitStatus())
}
