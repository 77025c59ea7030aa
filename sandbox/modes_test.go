package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Host users must reach nothing of a pod: its dir and everything berth makes on the way are private (the pods dir
// 0710 to the userns group only), whatever the umask, and a restart tightens the 0711 pod dirs of an older berth.
func TestDirModes(t *testing.T) {
	e := newEnv(t)
	old := unix.Umask(0)
	defer unix.Umask(old)
	m := e.manager(t)
	p, err := m.Create(context.Background(), fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Remove(context.Background(), p)
	for path, want := range map[string]string{
		filepath.Join(e.stateDir, "pods"):    "710 0:4242",
		filepath.Join(e.stateDir, "cgroups"): "700 0:0",
		p.Dir():                              "700 0:0",
		filepath.Join(p.Dir(), nsDir):        "700 0:0",
		p.HostsPath():                        "644 0:0",
		p.ResolvPath():                       "644 0:0",
		p.path(recordFile):                   "600 0:0",
	} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if err := os.Chmod(p.Dir(), 0o711); err != nil {
		t.Fatal(err)
	}
	if _, err := e.manager(t).Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, p.Dir()); got != "700 0:0" {
		t.Errorf("an older berth's pod dir after Recover: %s, want 700 0:0", got)
	}
}
