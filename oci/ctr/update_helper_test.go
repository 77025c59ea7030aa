package ctr

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// An update whose helper hangs (a systemd that does not answer over D-Bus) fails after updateTimeout instead of
// holding the call for ever.
func TestUpdateHelperBounded(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "berth-monitor")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := updateTimeout
	updateTimeout = 200 * time.Millisecond
	defer func() { updateTimeout = old }()
	rt := &Runtime{Root: t.TempDir(), Helper: helper}
	done := make(chan error, 1)
	go func() { done <- rt.Update("c1", &specs.LinuxResources{}) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("update of a hung helper succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("update of a hung helper still running after 10s")
	}
}
