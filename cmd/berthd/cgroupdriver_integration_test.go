//go:build integration

package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// systemdDriver says whether the test daemons use the systemd cgroup driver: named by BERTH_TEST_CGROUP_DRIVER, or
// "auto" on a host systemd booted (as berthd resolves it).
func systemdDriver() bool {
	switch os.Getenv("BERTH_TEST_CGROUP_DRIVER") {
	case "systemd":
		return true
	case "", "auto":
		fi, err := os.Lstat("/run/systemd/system")
		return err == nil && fi.IsDir()
	}
	return false
}

// unitProperties reads properties of a systemd unit (systemctl show), e.g. {"LoadState": "loaded"}.
func unitProperties(t *testing.T, unit string, names ...string) map[string]string {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"show", unit}
	for _, n := range names {
		args = append(args, "-p", n)
	}
	out, err := exec.CommandContext(c, "systemctl", args...).Output()
	if err != nil {
		t.Fatalf("systemctl %s: %v", strings.Join(args, " "), err)
	}
	props := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	return props
}

// checkUnitGone fails the test when systemd still has the unit loaded 10 s on: it unloads a stopped unit in its
// garbage collection, a little after the stop job ended.
func checkUnitGone(t *testing.T, unit string) {
	t.Helper()
	checkUnit(t, unit, func(p map[string]string) bool { return p["LoadState"] == "not-found" })
}

// checkUnitStopped fails the test when the unit is still active 10 s on. A slice berthd made and stopped stays
// loaded, inactive, while berthd runs (seen on systemd 252; unloaded once berthd exits), so slices are checked
// stopped (their cgroup gone: checkNoLeaks), scopes unloaded.
func checkUnitStopped(t *testing.T, unit string) {
	t.Helper()
	checkUnit(t, unit, func(p map[string]string) bool { return p["LoadState"] == "not-found" || p["ActiveState"] == "inactive" })
}

func checkUnit(t *testing.T, unit string, ok func(map[string]string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := unitProperties(t, unit, "LoadState", "ActiveState")
		if ok(p) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("unit %s left: %v", unit, p)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
