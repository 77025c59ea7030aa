package deploy_test

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// The unit's settings that berth's behaviour under systemd rests on (hack/vm/guest/systemd.sh checks them on a real
// systemd): readiness after recovery, a watchdog, restarts of a crashed berthd, and stops that spare the workloads.
func TestUnitSettings(t *testing.T) {
	f, err := os.Open("berthd.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	service := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("not a setting: %q", line)
			}
			if _, dup := service[k]; dup && !strings.HasPrefix(k, "Exec") {
				t.Errorf("%s set twice", k)
			}
			service[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Type":         "notify",     // berthd sends READY=1 (internal/sdnotify)
		"NotifyAccess": "main",       // monitors share the cgroup and must not speak for berthd
		"KillMode":     "process",    // a stop or restart leaves monitors and containers running
		"Restart":      "on-failure", // a kill -9 or a watchdog kill brings berthd back
		"WatchdogSec":  "60s",        // pinged every 30s while berthd answers itself
		"ExecStart":    "/usr/local/bin/berthd",
		"ExecReload":   "/bin/kill -HUP $MAINPID", // SIGHUP reloads the configuration (cmd/berthd/reload.go)
		"Delegate":     "yes",
	} {
		if got := service[k]; got != want {
			t.Errorf("[Service] %s=%q, want %q", k, got, want)
		}
	}
}
