package monitor

import (
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// stopPause must not signal the pause's pid once the pause is gone: the pid may be another process's by then. The
// stand-in plays that process: the pause died and was reaped, and pausePid now names the stand-in.
func TestStopPauseSkipsReusedPid(t *testing.T) {
	s := &server{dir: t.TempDir(), reaper: &reaper{watched: map[int]chan unix.WaitStatus{}}, log: slog.Default()}
	// A reaper that is not running: the test reaps the pause itself, as the reaper would.
	if err := s.startPause(func(string, string) *exec.Cmd {
		cmd := exec.Command("sleep", "1031")
		cmd.SysProcAttr = &syscall.SysProcAttr{}
		return cmd
	}, UserNamespace{}); err != nil {
		t.Fatal(err)
	}
	pause := s.pausePid
	if err := unix.Kill(pause, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pause, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	s.reaper.mu.Lock()
	ch := s.reaper.watched[pause]
	delete(s.reaper.watched, pause)
	s.reaper.mu.Unlock()
	ch <- ws

	standIn := exec.Command("sleep", "1032")
	if err := standIn.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { standIn.Wait(); close(exited) }()
	t.Cleanup(func() { standIn.Process.Kill(); <-exited })
	s.pausePid = standIn.Process.Pid

	s.stopPause()
	select {
	case <-exited:
		t.Fatalf("stopPause killed pid %d, which the pause (pid %d, reaped) no longer owns", standIn.Process.Pid, pause)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := os.Stat(s.dir + "/" + PausePidName); !os.IsNotExist(err) {
		t.Errorf("%s left after stopPause: %v", PausePidName, err)
	}
}

// Once the pause process has died, its namespaces are not opened by pid: a stand-in given the pid (simulated by
// pointing the handle at another process) would lend its own. CheckPause says why, for a Client connected before
// and after the death.
func TestPauseNamespaceAfterPauseDied(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", true) // closed by nothing: the test's shutdown needs its pidfd
	if err := c.CheckPause(); err != nil {
		t.Fatalf("CheckPause of a running pause: %v", err)
	}
	ns, err := c.PauseNamespace("pid")
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	if err := unix.Kill(c.PausePid(), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	if err := c.WaitPause(ctx); err != nil {
		t.Fatalf("WaitPause: %v", err)
	}
	standIn := exec.Command("sleep", "1033")
	if err := standIn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { standIn.Process.Kill(); standIn.Wait() }()
	c.pause.pid = standIn.Process.Pid
	// The pidfd is checked after the open, which succeeds: /proc/<pid> is the stand-in's.
	if ns, err := c.pause.namespace("pid"); !errdefs.IsFailedPrecondition(err) {
		if ns != nil {
			ns.Close()
		}
		t.Errorf("namespace of the dead pause's pid = %v, want FailedPrecondition", err)
	}
	if ns, err := c.PauseNamespace("pid"); !errdefs.IsFailedPrecondition(err) {
		if ns != nil {
			ns.Close()
		}
		t.Errorf("PauseNamespace after the pause died = %v, want FailedPrecondition", err)
	}
	later, err := Connect(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	for name, cl := range map[string]*Client{"connected before": c, "connected after": later} {
		if err := cl.CheckPause(); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s: CheckPause after the pause died = %v, want FailedPrecondition", name, err)
		}
	}
}
