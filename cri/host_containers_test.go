package cri

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// A container is read through the runtime whose root holds its state: libcontainer's or a handler's.
func TestHostContainersByRoot(t *testing.T) {
	dir := t.TempDir()
	def := &ctr.Runtime{Root: filepath.Join(dir, "runc")}
	crun := &ctr.Runtime{Root: filepath.Join(dir, "crun"), Binary: ctr.Binary{Path: "/usr/bin/crun"}}
	write := func(root, id string, pid int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, id), 0o700); err != nil {
			t.Fatal(err)
		}
		st := `{"id":"` + id + `","init_process_pid":` + strconv.Itoa(pid) + `,"cgroup_paths":{"":"/x"}}`
		if err := os.WriteFile(filepath.Join(root, id, ctr.StateFile), []byte(st), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(def.Root, "a", 11)
	write(crun.Root, "b", 22)
	h := HostContainers(def, crun).(hostContainers)
	for id, want := range map[string]*ctr.Runtime{"a": def, "b": crun, "gone": def} {
		if got := h.of(id); got != want {
			t.Errorf("of(%s) = %s, want %s", id, got.Root, want.Root)
		}
	}
	for id, pid := range map[string]int{"a": 11, "b": 22} {
		c, err := h.Load(id)
		if err != nil {
			t.Fatalf("Load(%s): %v", id, err)
		}
		if got := c.(*ctr.State).InitPid; got != pid {
			t.Errorf("Load(%s) pid %d, want %d", id, got, pid)
		}
	}
	if _, err := h.Load("gone"); !errdefs.IsNotFound(err) {
		t.Errorf("Load(gone): %v, want NotFound", err)
	}
}
