package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

func fakeBinary(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runtime")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRuntimeHandlers(t *testing.T) {
	withRRO := fakeBinary(t, `[ "$1" = features ] && echo '{"ociVersionMin":"1.0.0","mountOptions":["ro","rro","bind"]}'`)
	without := fakeBinary(t, `echo "unknown command $1" >&2; exit 1`)
	yes, no := true, false
	tests := map[string]struct {
		rc      config.RuntimeConfig
		systemd bool
		rro     bool
		err     string
	}{
		"features state rro":     {rc: config.RuntimeConfig{Binary: withRRO}, rro: true},
		"no features command":    {rc: config.RuntimeConfig{Binary: without}},
		"systemd follows driver": {rc: config.RuntimeConfig{Binary: without}, systemd: true},
		"systemd agrees":         {rc: config.RuntimeConfig{Binary: without, SystemdCgroup: &yes}, systemd: true},
		"systemd disagrees":      {rc: config.RuntimeConfig{Binary: without, SystemdCgroup: &no}, systemd: true, err: "runtimes.x.systemd_cgroup: false, but the cgroup driver in use is systemd"},
		"cgroupfs disagrees":     {rc: config.RuntimeConfig{Binary: without, SystemdCgroup: &yes}, err: "cgroup driver in use is cgroupfs"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := config.Default()
			cfg.StateDir = t.TempDir()
			cfg.Runtimes = map[string]config.RuntimeConfig{"x": tc.rc}
			hs, err := runtimeHandlers(context.Background(), cfg, tc.systemd, slog.New(slog.DiscardHandler))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("error %v, want InvalidArgument mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := hs["x"]
			if h.status.RecursiveReadOnly != tc.rro || h.status.UserNamespaces {
				t.Errorf("features %+v, want rro %v and no user namespaces", h.status, tc.rro)
			}
			for _, d := range []string{h.binary.Root, h.records} {
				if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v %v, want a 0700 dir", d, st.Mode(), err)
				}
			}
			rts, status := handlerRuntimes(hs, tc.systemd, "/helper")
			if len(rts) != 1 || rts[0].Root != h.records || rts[0].Binary.Path != tc.rc.Binary || rts[0].Systemd != tc.systemd || len(status) != 1 {
				t.Errorf("handlerRuntimes: %+v %+v", rts, status)
			}
		})
	}
}
