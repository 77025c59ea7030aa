package monitor

import (
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
