package ctr

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestLoad(t *testing.T) {
	root := t.TempDir()
	write := func(id, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, id, StateFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("good", `{"id":"good","init_process_pid":7,"init_process_start":9,"cgroup_paths":{"":"/x"},"config":{}}`)
	write("bad", `{"id":`)
	rt := &Runtime{Root: root}
	for _, tc := range []struct {
		id   string
		want func(error) bool
	}{
		{"", errdefs.IsInvalidArgument},
		{"../good", errdefs.IsInvalidArgument},
		{".hidden", errdefs.IsInvalidArgument},
		{"missing", errdefs.IsNotFound},
		{"bad", func(err error) bool { return err != nil && !errdefs.IsNotFound(err) }},
		{"good", func(err error) bool { return err == nil }},
	} {
		st, err := rt.Load(tc.id)
		if !tc.want(err) {
			t.Errorf("Load(%q) = %v", tc.id, err)
		}
		if err == nil && (st.InitPid != 7 || st.Config.Cgroups == nil || st.Config.Cgroups.Resources == nil) {
			t.Errorf("Load(%q) = %+v: want pid 7 and non-nil cgroup resources", tc.id, st)
		}
	}
}

func TestPidAndSignalCheckStartTime(t *testing.T) {
	self := os.Getpid()
	start := ProcessStart(self)
	if start == 0 {
		t.Fatal("no start time for this process")
	}
	if got := (&State{InitPid: self, InitStart: start}).Pid(); got != self {
		t.Errorf("Pid() of a live init = %d, want %d", got, self)
	}
	// Same pid, another start time: a recycled pid, not the container's init.
	recycled := &State{ID: "c", InitPid: self, InitStart: start + 1}
	if got := recycled.Pid(); got != 0 {
		t.Errorf("Pid() of a recycled pid = %d, want 0", got)
	}
	if err := recycled.Signal(syscall.Signal(0), false); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Signal to a recycled pid = %v, want FailedPrecondition", err)
	}
	if err := (&State{ID: "c", InitPid: self, InitStart: start}).Signal(syscall.Signal(0), false); err != nil {
		t.Errorf("Signal 0 to a live init = %v", err)
	}
}

func TestDestroyWithoutStateRunsNoHelper(t *testing.T) {
	rt := &Runtime{Root: t.TempDir(), Helper: "/nonexistent/berth-monitor"}
	if err := rt.Destroy(context.Background(), "gone"); err != nil {
		t.Errorf("Destroy of a container without state = %v", err)
	}
	if err := rt.Destroy(context.Background(), "../x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Destroy(../x) = %v, want InvalidArgument", err)
	}
}
