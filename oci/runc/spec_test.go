package runc

import (
	"slices"
	"testing"

	devices "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
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
	// CDI's edits reach libcontainer: every kind of hook, in order, and the device nodes with their numbers and
	// cgroup rules.
	t.Run("hooks and devices pass through", func(t *testing.T) {
		hook := func(name string) specs.Hook { return specs.Hook{Path: "/bin/" + name, Args: []string{name, "x"}} }
		in := spec(func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{
				Prestart:        []specs.Hook{hook("prestart")}, //nolint:staticcheck // deprecated, still run by runc and written by CDI
				CreateRuntime:   []specs.Hook{hook("createRuntime1"), hook("createRuntime2")},
				CreateContainer: []specs.Hook{hook("createContainer")},
				StartContainer:  []specs.Hook{hook("startContainer")},
				Poststart:       []specs.Hook{hook("poststart")},
				Poststop:        []specs.Hook{hook("poststop")},
			}
			major, minor := int64(1), int64(3)
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/berth-cdi-null", Type: "c", Major: major, Minor: minor}}
			s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}}}
		})
		cfg, err := libcontainerConfig("c1", "/run/b", in, false)
		if err != nil {
			t.Fatal(err)
		}
		want := map[configs.HookName][]string{
			configs.Prestart: {"/bin/prestart"}, configs.CreateRuntime: {"/bin/createRuntime1", "/bin/createRuntime2"},
			configs.CreateContainer: {"/bin/createContainer"}, configs.StartContainer: {"/bin/startContainer"},
			configs.Poststart: {"/bin/poststart"}, configs.Poststop: {"/bin/poststop"},
		}
		for name, paths := range want {
			var got []string
			for _, h := range cfg.Hooks[name] {
				if c, ok := h.(configs.CommandHook); ok {
					got = append(got, c.Path)
				}
			}
			if !slices.Equal(got, paths) {
				t.Errorf("%s hooks %q, want %q", name, got, paths)
			}
		}
		if !slices.ContainsFunc(cfg.Devices, func(d *devices.Device) bool {
			return d.Path == "/dev/berth-cdi-null" && d.Type == devices.CharDevice && d.Major == 1 && d.Minor == 3
		}) {
			t.Errorf("devices lack /dev/berth-cdi-null c 1:3")
		}
		if !slices.ContainsFunc(cfg.Cgroups.Resources.Devices, func(r *devices.Rule) bool {
			return r.Allow && r.Type == devices.CharDevice && r.Major == 1 && r.Minor == 3
		}) {
			t.Errorf("device rules %+v lack allow c 1:3", cfg.Cgroups.Resources.Devices)
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
