package monitor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An OOM kill seen while the cgroup existed is still counted once the cgroup is gone, as when systemd removes a
// scope whose process the kernel OOM-killed before the monitor reaps it.
func TestOOMWatchOutlivesCgroup(t *testing.T) {
	w, err := newOOMWatch()
	if err != nil {
		t.Fatal(err)
	}
	defer w.f.Close()
	w.read = func(dir string) (uint64, error) { // memory.events' oom_kill, from a plain file
		b, err := os.ReadFile(filepath.Join(dir, "memory.events"))
		if err != nil {
			return 0, err
		}
		_, v, _ := strings.Cut(string(b), "oom_kill ")
		return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	}
	dir := filepath.Join(t.TempDir(), "berth-c1.scope")
	events := filepath.Join(dir, "memory.events")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(oomKills string) {
		t.Helper()
		if err := os.WriteFile(events, []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill "+oomKills+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0")
	c, err := w.watch(dir)
	if err != nil {
		t.Fatal(err)
	}
	write("1")
	for deadline := time.Now().Add(5 * time.Second); c.n.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if n := c.count(); n != 1 {
		t.Errorf("count after the cgroup's removal = %d, want 1", n)
	}
	w.unwatch(c)
}
