package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

func syscallKill(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestExitAndLogs(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"sh", "-c", "echo hi; echo err >&2; exit 3"})
	logPath := filepath.Join(e.dir, "c1.log")
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}
	st, err := c.State(ctx)
	if err != nil || len(st) != 1 || st[0].Status != StatusCreated || st[0].Pid == 0 {
		t.Fatalf("state after create = %+v, %v", st, err)
	}
	if _, err := ReadExit(b); !errdefs.IsNotFound(err) {
		t.Errorf("ReadExit before exit: %v, want NotFound", err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(t, b, 10*time.Second)
	if ex.ExitCode != 3 || ex.Signal != "" || ex.OOMKilled || ex.StartedAt.IsZero() || ex.FinishedAt.Before(ex.StartedAt) {
		t.Errorf("exit = %+v, want code 3 with times", ex)
	}
	got := readLog(t, logPath)
	want := map[logLine]bool{{"stdout", "F", "hi"}: true, {"stderr", "F", "err"}: true}
	if len(got) != 2 || !want[got[0]] || !want[got[1]] {
		t.Errorf("log = %+v, want hi on stdout and err on stderr", got)
	}
	st, _ = c.State(ctx)
	if len(st) != 1 || st[0].Status != StatusExited || st[0].Exit == nil || st[0].Exit.ExitCode != 3 {
		t.Errorf("state after exit = %+v", st)
	}
	if err := c.Start(ctx, "c1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("start of exited container: %v, want FailedPrecondition", err)
	}
	if err := c.Signal(ctx, "c1", syscall.SIGTERM); err != nil {
		t.Errorf("signal to exited container: %v", err)
	}
	if err := c.Remove(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "c1"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if err := c.Signal(ctx, "c1", syscall.SIGTERM); !errdefs.IsNotFound(err) {
		t.Errorf("signal after remove: %v, want NotFound", err)
	}
	if d := cgroupDirs(e.cgroup + "/p1/c1"); len(d) > 0 {
		t.Errorf("cgroup left after remove: %v", d)
	}
	if _, err := os.Stat(filepath.Join(e.runcRoot, "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("libcontainer state left after remove: %v", err)
	}
}

func TestKillRunningAndDestroy(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	// Children of init, some double-forked, all in the container's cgroup.
	b := e.bundle("p1", "c1", []string{"sh", "-c", "sleep 1001 & (sleep 1002 &) ; exec sleep 1003"})
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "container's sleeps", func() bool { return len(processesNamed("sleep", "1002")) == 1 })
	if err := c.Signal(ctx, "c1", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(t, b, 10*time.Second)
	if ex.ExitCode != 137 || ex.Signal != "SIGKILL" {
		t.Errorf("exit = %+v, want 137 SIGKILL", ex)
	}
	for _, arg := range []string{"1001", "1002", "1003"} {
		if p := processesNamed("sleep", arg); len(p) > 0 {
			t.Errorf("sleep %s still runs: %v", arg, p)
		}
	}

	// Remove of a running container kills it; a created one too.
	b2 := e.bundle("p1", "c2", []string{"sleep", "1004"})
	b3 := e.bundle("p1", "c3", []string{"sleep", "1005"})
	for _, r := range []CreateRequest{{ID: "c2", Bundle: b2}, {ID: "c3", Bundle: b3}} {
		if err := c.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		if err := c.Remove(ctx, id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		if d := cgroupDirs(e.cgroup + "/p1/" + id); len(d) > 0 {
			t.Errorf("cgroup left after remove: %v", d)
		}
	}
	if p := processesNamed("sleep", "1004"); len(p) > 0 {
		t.Errorf("removed container still runs: %v", p)
	}
	if ex := waitExit(t, b3, time.Second); ex.ExitCode != 137 || !ex.StartedAt.IsZero() {
		t.Errorf("exit of a container removed before start = %+v", ex)
	}
	if st, _ := c.State(ctx); len(st) != 0 {
		t.Errorf("state after removes = %+v", st)
	}
}

func TestTerminal(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"sh", "-c", "echo tty-out; tty"}, func(s *specs.Spec) {
		s.Process.Terminal = true
	})
	logPath := filepath.Join(e.dir, "c1.log")
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: logPath, TTY: false}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("tty mismatch: %v, want InvalidArgument", err)
	}
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: logPath, TTY: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, b, 10*time.Second); ex.ExitCode != 0 {
		t.Errorf("exit = %+v", ex)
	}
	got := readLog(t, logPath)
	// The terminal turns \n into \r\n.
	want := []logLine{{"stdout", "F", "tty-out\r"}, {"stdout", "F", "/dev/pts/0\r"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("log = %q, want %q", got, want)
	}
}

func TestAttachStdinOnce(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"sh", "-c", "cat; echo done >&2"})
	logPath := filepath.Join(e.dir, "c1.log")
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: logPath, Stdin: true, StdinOnce: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	// A second attacher without stdin sees the same output.
	watcherOut := &syncBuffer{}
	watcherDone := make(chan error, 1)
	go func() { watcherDone <- c.Attach(ctx, "c1", nil, watcherOut, io.Discard, nil) }()
	waitFor(t, "watcher attached", func() bool { return attachers(c) == 1 })

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- c.Attach(ctx, "c1", inR, outW, io.Discard, nil) }()
	echoed := bufio.NewReader(outR)
	fmt.Fprintln(inW, "hello")
	if line, err := echoed.ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}
	// The kubelet rotates the log: rename, then reopen.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := c.ReopenLog(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(inW, "world")
	if line, err := echoed.ReadString('\n'); err != nil || line != "world\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}
	go io.Copy(io.Discard, outR)
	inW.Close() // stdin_once: the container's stdin closes, cat exits
	for _, ch := range []chan error{done, watcherDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("attach: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("attach did not return after the container exited")
		}
	}
	if got := watcherOut.String(); got != "hello\nworld\n" {
		t.Errorf("second attacher saw %q", got)
	}
	if ex := waitExit(t, b, 5*time.Second); ex.ExitCode != 0 {
		t.Errorf("exit = %+v", ex)
	}
	if got := readLog(t, logPath+".1"); len(got) != 1 || got[0] != (logLine{"stdout", "F", "hello"}) {
		t.Errorf("rotated log = %+v", got)
	}
	if got := readLog(t, logPath); len(got) != 2 || got[0] != (logLine{"stdout", "F", "world"}) || got[1] != (logLine{"stderr", "F", "done"}) {
		t.Errorf("log = %+v", got)
	}
	if err := c.Attach(ctx, "c1", nil, io.Discard, nil, nil); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("attach to exited container: %v, want FailedPrecondition", err)
	}
}

func TestAttachTerminalResize(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"sh", "-c", "read x; stty size"}, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Width: 80, Height: 24}
	})
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, TTY: true, Stdin: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	resize := make(chan Size, 1)
	resize <- Size{Width: 123, Height: 45}
	inR, inW := io.Pipe()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- c.Attach(ctx, "c1", inR, out, nil, resize) }()
	// Resize and stdin travel from different goroutines: release the shell once its terminal (seen
	// through its stdin) has the new size.
	st, err := c.State(ctx)
	if err != nil || len(st) != 1 {
		t.Fatalf("state = %+v, %v", st, err)
	}
	waitFor(t, "the resize", func() bool {
		f, err := os.Open(fmt.Sprintf("/proc/%d/fd/0", st[0].Pid))
		if err != nil {
			return false
		}
		defer f.Close()
		ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
		return err == nil && ws.Col == 123 && ws.Row == 45
	})
	fmt.Fprintln(inW, "go")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "45 123") {
		t.Errorf("terminal output %q lacks the new size 45 123", out.String())
	}
}

// attachers counts the monitor's connections besides its listener: an attach session is registered
// before the monitor answers it, and it is the only connection that stays open.
func attachers(c *Client) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Pid()))
	n := 0
	for _, ent := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", c.Pid(), ent.Name())); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n - 1 // the listener
}

func TestExec(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 60*time.Second)
	b := e.bundle("p1", "c1", []string{"sleep", "1000"})
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b}); err != nil {
		t.Fatal(err)
	}
	// As berthd does: through the exec and update helpers (this test binary), and the state on disk.
	rt := &ctr.Runtime{Root: e.runcRoot, Helper: os.Args[0]}
	if _, err := rt.Exec(ctx, "c1", ctr.ExecProcess{Args: []string{"true"}}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("exec in a created container: %v, want FailedPrecondition", err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}

	t.Run("output and exit code", func(t *testing.T) {
		var out, errb syncBuffer
		st, err := rt.Exec(ctx, "c1", ctr.ExecProcess{
			Args: []string{"sh", "-c", "echo out; echo err >&2; read x; echo got $x; exit 7"}, Env: []string{"PATH=/bin"},
			Stdin: strings.NewReader("input\n"), Stdout: &out, Stderr: &errb,
		})
		if err != nil || st.Code != 7 || out.String() != "out\ngot input\n" || errb.String() != "err\n" {
			t.Errorf("exec = %+v, %v; stdout %q stderr %q", st, err, out.String(), errb.String())
		}
	})
	t.Run("timeout kills the whole tree", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		_, err := rt.Exec(tctx, "c1", ctr.ExecProcess{Args: []string{"sh", "-c", "sleep 100 & sleep 101"}, Env: []string{"PATH=/bin"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("exec past its timeout: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("exec returned %v after its 1s timeout", d)
		}
		for _, arg := range []string{"100", "101"} {
			if p := processesNamed("sleep", arg); len(p) > 0 {
				t.Errorf("sleep %s survived the timeout: %v", arg, p)
			}
		}
	})
	t.Run("background child holding the pipes", func(t *testing.T) {
		var out syncBuffer
		start := time.Now()
		st, err := rt.Exec(ctx, "c1", ctr.ExecProcess{Args: []string{"sh", "-c", "echo bg; sleep 102 &"}, Env: []string{"PATH=/bin"}, Stdout: &out})
		if err != nil || st.Code != 0 || out.String() != "bg\n" {
			t.Errorf("exec = %+v, %v, %q", st, err, out.String())
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("exec took %v: held by its background child", d)
		}
		// The child keeps running, in the container's cgroup.
		if p := processesNamed("sleep", "102"); len(p) != 1 {
			t.Errorf("background child: %v", p)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		var out syncBuffer
		st, err := rt.Exec(ctx, "c1", ctr.ExecProcess{Args: []string{"tty"}, Env: []string{"PATH=/bin"}, Terminal: true, Stdout: &out})
		if err != nil || st.Code != 0 || !strings.HasPrefix(out.String(), "/dev/pts/") {
			t.Errorf("exec = %+v, %v, %q", st, err, out.String())
		}
	})
	shares := uint64(512)
	if err := rt.Update("c1", &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}}); err != nil {
		t.Errorf("update: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", e.cgroup, "p1/c1/cpu.shares")); strings.TrimSpace(string(got)) != "512" {
		t.Errorf("cpu.shares after update = %q", got)
	}
	if st, err := rt.Exec(ctx, "c1", ctr.ExecProcess{Args: []string{"cat", "/dev/null"}, Env: []string{"PATH=/bin"}}); err != nil || st.Code != 0 {
		t.Errorf("device access after update: %+v, %v", st, err)
	}
	st, err := rt.Load("c1")
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats()
	if err != nil || stats.Memory.Usage == 0 || stats.Pids.Current < 2 || stats.CPU.UsageNanos == 0 {
		t.Errorf("stats = %+v, %v", stats, err)
	}
	if err := c.Remove(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if p := processesNamed("sleep", "102"); len(p) > 0 {
		t.Errorf("exec's background child survived the container: %v", p)
	}
}

func TestOOM(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 60*time.Second)
	limit := int64(20 << 20)
	b := e.bundle("p1", "c1", []string{"tail", "/dev/zero"}, func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	})
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(t, b, 30*time.Second)
	if ex.ExitCode != 137 || !ex.OOMKilled {
		t.Errorf("exit = %+v, want 137 and OOM-killed", ex)
	}
}

func TestReconnectAfterClientKilled(t *testing.T) {
	e := newEnv(t)
	opts := e.startOptions("p1", false)
	b := e.bundle("p1", "c1", []string{"sh", "-c", "trap 'exit 7' TERM; sleep 1006 & wait"})
	optsJSON, _ := json.Marshal(opts)
	// A client process starts the monitor and a container, then dies.
	holder := exec.Command("/proc/self/exe", "hold-monitor", string(optsJSON), b)
	holder.Stderr = os.Stderr
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		holder.Process.Kill()
		t.Fatalf("holder: %q, %v", line, err)
	}
	holder.Process.Kill()
	holder.Wait()

	c, err := Connect(opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.shutdown(c) })
	ctx := ctxT(t, 30*time.Second)
	st, err := c.State(ctx)
	if err != nil || len(st) != 1 || st[0].Status != StatusRunning {
		t.Fatalf("state after reconnect = %+v, %v", st, err)
	}
	if err := syscall.Kill(st[0].Pid, 0); err != nil {
		t.Errorf("container init %d: %v", st[0].Pid, err)
	}
	waitFor(t, "the container's sleep", func() bool { return len(processesNamed("sleep", "1006")) == 1 })
	if _, err := Start(ctx, opts); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second Start: %v, want AlreadyExists", err)
	}
	if err := c.Signal(ctx, "c1", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, b, 10*time.Second); ex.ExitCode != 7 || ex.Signal != "" {
		t.Errorf("exit = %+v", ex)
	}
}

// holdMonitor is the client killed by TestReconnectAfterClientKilled.
func holdMonitor(args []string) int {
	var opts StartOptions
	if err := json.Unmarshal([]byte(args[0]), &opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	c, err := Start(ctx, opts)
	if err == nil {
		err = c.Create(ctx, CreateRequest{ID: "c1", Bundle: args[1]})
	}
	if err == nil {
		err = c.Start(ctx, "c1")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

func TestPauseSharedPIDNamespace(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", true)
	ctx := ctxT(t, 30*time.Second)
	pp := c.PausePid()
	if pp == 0 {
		t.Fatal("no pause process")
	}
	if uid := procStatus(t, pp, "Uid"); uid != "65535\t65535\t65535\t65535" {
		t.Errorf("pause uid %q", uid)
	}
	if caps := procStatus(t, pp, "CapEff"); caps != "0000000000000000" {
		t.Errorf("pause capabilities %q", caps)
	}
	if ns := strings.Fields(procStatus(t, pp, "NSpid")); len(ns) != 2 || ns[1] != "1" {
		t.Errorf("pause NSpid %v, want PID 1 of a new namespace", ns)
	}
	if root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pp)); root != filepath.Join(c.Dir(), PauseDirName) {
		t.Errorf("pause root %q", root)
	}
	pss, rss := memoryKiB(t, pp)
	t.Logf("pause process: Pss %d KiB, Rss %d KiB", pss, rss)

	logPath := filepath.Join(e.dir, "c1.log")
	// An orphan left behind is reaped by pause, not left a zombie.
	b := e.bundle("p1", "c1", []string{"sh", "-c", "(sleep 0.2 &); echo $$"}, func(s *specs.Spec) {
		s.Linux.Namespaces[0].Path = fmt.Sprintf("/proc/%d/ns/pid", pp)
	})
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, b, 10*time.Second); ex.ExitCode != 0 {
		t.Errorf("exit = %+v", ex)
	}
	if got := readLog(t, logPath); len(got) != 1 || got[0].text == "1" {
		t.Errorf("log = %+v: want the shell's pid, not 1, in the pod's namespace", got)
	}
	// The orphaned sleep was killed with its container and reaped by pause.
	children := fmt.Sprintf("/proc/%d/task/%d/children", pp, pp)
	waitFor(t, "pause to reap the orphan", func() bool {
		b, err := os.ReadFile(children)
		return err == nil && len(strings.TrimSpace(string(b))) == 0
	})
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pp, 0); err != syscall.ESRCH {
		t.Errorf("pause still runs after shutdown: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}

// SIGKILL to a container in the pod's PID namespace ends its other processes too, which outlive its init
// there.
func TestKillSharedPIDNamespace(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", true)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"sh", "-c", "(sleep 1011 &); exec sleep 1012"}, func(s *specs.Spec) {
		s.Linux.Namespaces[0].Path = fmt.Sprintf("/proc/%d/ns/pid", c.PausePid())
	})
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container's sleeps", func() bool { return len(processesNamed("sleep", "1011")) == 1 })
	if err := c.Signal(ctx, "c1", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, b, 10*time.Second); ex.ExitCode != 137 {
		t.Errorf("exit = %+v, want 137", ex)
	}
	waitFor(t, "the orphaned sleep to die", func() bool { return len(processesNamed("sleep", "1011")) == 0 })
	if err := c.Remove(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if d := cgroupDirs(e.cgroup + "/p1/c1"); len(d) > 0 {
		t.Errorf("cgroup left after remove: %v", d)
	}
}

func TestStartErrors(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 10*time.Second)
	opts := e.startOptions("p1", false)
	opts.CgroupPath = "/cgroup.procs" // not a directory
	if _, err := Start(ctx, opts); err == nil || !strings.Contains(err.Error(), "monitor.log") {
		t.Errorf("Start with a bad cgroup: %v, want an error pointing at the log", err)
	}
	if _, err := Connect(filepath.Join(e.dir, "none")); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Connect without monitor: %v, want Unavailable", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCreateLogPathBeneathLogDir: the monitor (root) refuses a log path outside LogDir or through a symlink below
// it with InvalidArgument, writing nothing to the symlink's target, and a refused create leaves nothing behind.
func TestCreateLogPathBeneathLogDir(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"sh", "-c", "echo out"})
	logDir := filepath.Join(e.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(e.dir, "victim")
	if err := os.WriteFile(victim, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(logDir, "link.log")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(logDir, "link.log"), victim} {
		if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: p, LogDir: logDir}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("log path %s: %v, want InvalidArgument", p, err)
		}
	}
	if st, _ := c.State(ctx); len(st) != 0 {
		t.Errorf("state after refused creates = %+v", st)
	}
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: filepath.Join(logDir, "c1.log"), LogDir: logDir}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); len(b) != 0 {
		t.Errorf("symlink target written: %q", b)
	}
}

// A log path replaced by a symlink after a rotation: ReopenLog refuses it as FailedPrecondition (the request was
// fine, the file on disk is not), not Unknown, and writes nothing through the link.
func TestReopenLogRefusesSymlink(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"sleep", "30"})
	logDir := filepath.Join(e.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(logDir, "c1.log")
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b, LogPath: logPath, LogDir: logDir}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(e.dir, "victim")
	if err := os.WriteFile(victim, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, logPath); err != nil {
		t.Fatal(err)
	}
	if err := c.ReopenLog(ctx, "c1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("ReopenLog through a symlink: %v, want FailedPrecondition", err)
	}
	if b, _ := os.ReadFile(victim); len(b) != 0 {
		t.Errorf("symlink target written: %q", b)
	}
}

// TestStartHoldsNoThreadOrGoroutine: berthd waits for the monitors it started without a thread (a thread blocked in
// waitid for a pod's life holds ~50 KiB of stacks) or a goroutine each, and still reaps each monitor when it exits,
// killed or shut down.
func TestStartHoldsNoThreadOrGoroutine(t *testing.T) {
	e := newEnv(t)
	const pods = 4
	clients := []*Client{e.start("warm", false)} // the threads and the reaper Start itself needs, made once
	threads0, goroutines0 := threads(t), runtime.NumGoroutine()
	for i := range pods {
		clients = append(clients, e.start(fmt.Sprintf("p%d", i), false))
	}
	if grown := threads(t) - threads0; grown >= pods {
		t.Errorf("%d monitors started, threads grew by %d: one blocked per monitor", pods, grown)
	}
	if grown := runtime.NumGoroutine() - goroutines0; grown >= pods {
		t.Errorf("%d monitors started, goroutines grew by %d: one per monitor", pods, grown)
	}
	if err := syscall.Kill(clients[1].pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		e.shutdown(c)
		waitFor(t, fmt.Sprintf("monitor %d reaped", c.pid), func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", c.pid))
			return errors.Is(err, fs.ErrNotExist)
		})
	}
}

func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := strings.Cut(string(b), "\nThreads:")
	n, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(v, "\n", 2)[0]))
	if err != nil {
		t.Fatalf("Threads in /proc/self/status: %v", err)
	}
	return n
}
