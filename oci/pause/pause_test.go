package pause

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary links the constructor, so it can be the pause process itself.
func TestPause(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := Command(self, dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	status := func(key string) string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, key+":"); ok {
				return strings.Join(strings.Fields(v), " ")
			}
		}
		return ""
	}
	// Wait until it dropped privileges.
	for deadline := time.Now().Add(5 * time.Second); status("Uid") != "65535 65535 65535 65535"; {
		if time.Now().After(deadline) {
			t.Fatalf("uid %q, stderr %q", status("Uid"), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := status("NSpid"); !strings.HasSuffix(got, " 1") {
		t.Errorf("NSpid %q, want PID 1 of its namespace", got)
	}
	if got := status("CapPrm"); got != "0000000000000000" {
		t.Errorf("CapPrm %q", got)
	}
	if got := status("NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs %q", got)
	}
	if root, _ := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/root"); root != dir {
		t.Errorf("root %q, want %q", root, dir)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v (stderr %q)", err, stderr.String())
	}
}

func TestPauseUsage(t *testing.T) {
	self, _ := os.Executable()
	cmd := Command(self, "")
	cmd.Args = cmd.Args[:2] // no directory
	cmd.SysProcAttr = nil
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "usage") {
		t.Errorf("pause without a directory: %v, %q", err, out)
	}
}
