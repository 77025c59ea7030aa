package runc

import (
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestLibcontainerConfig(t *testing.T) {
	spec := func(mod func(*specs.Spec)) *specs.Spec {
		s := &specs.Spec{
			Root:    &specs.Root{Path: "rootfs"},
			Process: &specs.Process{Args: []string{"sh"}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}}, ApparmorProfile: "p"},
			Mounts: []specs.Mount{
				{Destination: "/etc/hosts", Source: "hosts", Options: []string{"rbind", "ro"}},
				{Destination: "/abs", Source: "/host/abs", Options: []string{"bind"}},
				{Destination: "/tmp", Source: "tmpfs", Type: "tmpfs"},
			},
			Linux: &specs.Linux{CgroupsPath: "/pod/c1"},
		}
		if mod != nil {
			mod(s)
		}
		return s
	}
	t.Run("paths resolved against the bundle", func(t *testing.T) {
		in := spec(nil)
		cfg, err := libcontainerConfig("c1", "/run/b", in, false)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Rootfs != "/run/b/rootfs" {
			t.Errorf("rootfs %q", cfg.Rootfs)
		}
		var sources []string
		for _, m := range cfg.Mounts {
			sources = append(sources, m.Source)
		}
		if want := []string{"/run/b/hosts", "/host/abs", "tmpfs"}; !slices.Equal(sources, want) {
			t.Errorf("mount sources %q, want %q", sources, want)
		}
		if !slices.Contains(cfg.Labels, "bundle=/run/b") {
			t.Errorf("labels %q lack the bundle", cfg.Labels)
		}
		if len(cfg.Rlimits) != 1 || cfg.Rlimits[0].Type != unix.RLIMIT_NOFILE || cfg.Rlimits[0].Soft != 5 || cfg.AppArmorProfile != "p" {
			t.Errorf("rlimits %+v, apparmor %q", cfg.Rlimits, cfg.AppArmorProfile)
		}
		if cfg.Cgroups.Path != "/pod/c1" {
			t.Errorf("cgroup path %q", cfg.Cgroups.Path)
		}
		if in.Root.Path != "rootfs" || in.Mounts[0].Source != "hosts" {
			t.Error("the caller's spec was modified")
		}
	})
	bad := map[string]struct {
		bundle string
		mod    func(*specs.Spec)
	}{
		"no process":      {"/b", func(s *specs.Spec) { s.Process = nil }},
		"no args":         {"/b", func(s *specs.Spec) { s.Process.Args = nil }},
		"no root":         {"/b", func(s *specs.Spec) { s.Root = nil }},
		"relative bundle": {"b", nil},
		"unknown rlimit":  {"/b", func(s *specs.Spec) { s.Process.Rlimits[0].Type = "RLIMIT_BOGUS" }},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := libcontainerConfig("c1", tc.bundle, spec(tc.mod), false); !errdefs.IsInvalidArgument(err) {
				t.Errorf("err = %v, want InvalidArgument", err)
			}
		})
	}
}
