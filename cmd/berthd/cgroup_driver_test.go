package main

import (
	"os"
	"path/filepath"
	"testing"
)

// "auto" follows sd_booted(3): the systemd driver where /run/systemd/system is a directory, whatever PID 1 is
// called (this host's PID 1 is not systemd).
func TestCgroupDriver(t *testing.T) {
	dir := t.TempDir()
	booted := filepath.Join(dir, "booted")
	if err := os.Mkdir(booted, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ configured, runDir, want string }{
		"auto on systemd":      {"auto", booted, "systemd"},
		"auto without systemd": {"auto", filepath.Join(dir, "missing"), "cgroupfs"},
		"auto, a file":         {"auto", file, "cgroupfs"},
		"cgroupfs on systemd":  {"cgroupfs", booted, "cgroupfs"},
		"systemd named":        {"systemd", filepath.Join(dir, "missing"), "systemd"},
	} {
		t.Run(name, func(t *testing.T) {
			old := systemdRunDir
			systemdRunDir = c.runDir
			defer func() { systemdRunDir = old }()
			if got := cgroupDriver(c.configured); got != c.want {
				t.Errorf("cgroupDriver(%q) with %s = %q, want %q", c.configured, c.runDir, got, c.want)
			}
		})
	}
}
