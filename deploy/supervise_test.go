package deploy_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// supervise runs the start script with a stand-in berthd (sleep), pid files in dir and no cgroup move.
func supervise(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	script, err := filepath.Abs("berthd-supervise")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "BERTHD=/bin/sleep", "BERTHD_ARGS=1000", "BERTHD_RUN_DIR="+dir,
		"BERTHD_LOG="+filepath.Join(dir, "berthd.log"), "BERTHD_CGROUP=", "BERTHD_RESTART_DELAY=0.1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("berthd-supervise %s: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestSupervise(t *testing.T) {
	if _, err := os.Stat("/bin/sleep"); err != nil {
		t.Skip("no /bin/sleep")
	}
	dir := t.TempDir()
	supPid, berthdPid := filepath.Join(dir, "berthd-supervise.pid"), filepath.Join(dir, "berthd.pid")
	t.Cleanup(func() {
		for _, f := range []string{supPid, berthdPid} {
			if data, err := os.ReadFile(f); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})

	if out, code := supervise(t, dir, "status"); code != 3 {
		t.Fatalf("status before start: exit %d: %s", code, out)
	}
	if out, code := supervise(t, dir, "start"); code != 0 || !strings.Contains(out, "started") {
		t.Fatalf("start: exit %d: %s", code, out)
	}
	sup, first := readPid(t, supPid), readPid(t, berthdPid)
	if out, code := supervise(t, dir, "start"); code != 0 || !strings.Contains(out, "running") || readPid(t, supPid) != sup {
		t.Fatalf("second start: exit %d: %s", code, out)
	}
	if out, code := supervise(t, dir, "status"); code != 0 || !strings.Contains(out, strconv.Itoa(first)) {
		t.Fatalf("status: exit %d: %s", code, out)
	}
	if hasSysResource(t) {
		if adj, _ := os.ReadFile("/proc/" + strconv.Itoa(first) + "/oom_score_adj"); strings.TrimSpace(string(adj)) != "-999" {
			t.Errorf("berthd's oom_score_adj %q, want -999", adj)
		}
	}

	// berthd dies: the supervisor starts it again.
	syscall.Kill(first, syscall.SIGKILL)
	var second int
	waitFor(t, "berthd to be restarted", func() bool {
		data, err := os.ReadFile(berthdPid)
		second, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && second != first && alive(second)
	})

	if out, code := supervise(t, dir, "restart"); code != 0 || !strings.Contains(out, "restarted") {
		t.Fatalf("restart: exit %d: %s", code, out)
	}
	if third := readPid(t, berthdPid); third == second || alive(second) || !alive(third) || readPid(t, supPid) != sup {
		t.Errorf("restart: berthd %d -> %d (old alive %v), supervisor %d -> %d", second, third, alive(second), sup, readPid(t, supPid))
	}
	third := readPid(t, berthdPid)

	if out, code := supervise(t, dir, "stop"); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("stop: exit %d: %s", code, out)
	}
	waitFor(t, "processes to exit", func() bool { return !alive(sup) && !alive(third) })
	for _, f := range []string{supPid, berthdPid} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left after stop", f)
		}
	}
	if out, code := supervise(t, dir, "stop"); code != 0 || !strings.Contains(out, "not running") {
		t.Errorf("second stop: exit %d: %s", code, out)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "berthd.log")); !strings.Contains(string(log), "starting it again") {
		t.Errorf("log does not report the restart:\n%s", log)
	}
}

// hasSysResource reports whether this process may lower OOM scores (CAP_SYS_RESOURCE, bit 24).
func hasSysResource(t *testing.T) bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0
		}
	}
	return false
}
