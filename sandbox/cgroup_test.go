package sandbox

import (
	"testing"

	"github.com/opencontainers/cgroups"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestPodCgroup(t *testing.T) {
	tests := map[string]struct {
		systemd bool
		parent  string
		want    string
		invalid bool
	}{
		"cgroupfs default":             {parent: "", want: "/berth/abc"},
		"cgroupfs kubelet":             {parent: "/kubepods/burstable/pod1234", want: "/kubepods/burstable/pod1234"},
		"cgroupfs slice-like path":     {parent: "/test.slice", want: "/test.slice"},
		"cgroupfs relative":            {parent: "kubepods/pod1", want: "/kubepods/pod1"},
		"cgroupfs unclean":             {parent: "/kubepods//pod1/../pod2/", want: "/kubepods/pod2"},
		"cgroupfs dot-dot stays below": {parent: "/../../x", want: "/x"},
		"cgroupfs root":                {parent: "/", invalid: true},
		"systemd default":              {systemd: true, want: "berth-abc.slice"},
		"systemd slice name":           {systemd: true, parent: "kubepods-burstable-pod123.slice", want: "kubepods-burstable-pod123.slice"},
		"systemd expanded path": {systemd: true, parent: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice",
			want: "kubepods-burstable-pod123.slice"},
		"systemd test slice":  {systemd: true, parent: "/test.slice", want: "test.slice"},
		"systemd not a slice": {systemd: true, parent: "/kubepods/burstable/pod1", invalid: true},
		"systemd bad slice":   {systemd: true, parent: "kubepods--x.slice", invalid: true},
		"systemd unclean expanded path": {systemd: true, parent: "/kubepods.slice//kubepods-pod1.slice/",
			want: "kubepods-pod1.slice"},
		// systemd would put pod1.slice at /pod1.slice, not where the path says.
		"systemd path not the slice's":   {systemd: true, parent: "/kubepods.slice/pod1.slice", invalid: true},
		"systemd path through a dir":     {systemd: true, parent: "/kubepods/kubepods-pod1.slice", invalid: true},
		"systemd relative expanded path": {systemd: true, parent: "kubepods.slice/kubepods-pod1.slice", want: "kubepods-pod1.slice"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := podCgroup(tc.systemd, tc.parent, "abc")
			if tc.invalid {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("got %q, %v; want invalid argument", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestChildCgroupConfig(t *testing.T) {
	tests := map[string]struct {
		systemd bool
		name    string // cgroup name as podCgroup/childCgroup make them
		want    cgroups.Cgroup
	}{
		"cgroupfs path": {name: "/kubepods/pod1/berth-monitor-abc", want: cgroups.Cgroup{Path: "/kubepods/pod1/berth-monitor-abc"}},
		"systemd pod slice": {systemd: true, name: "kubepods-burstable-pod123.slice",
			want: cgroups.Cgroup{Name: "kubepods-burstable-pod123.slice", Parent: "kubepods-burstable.slice", Systemd: true}},
		"systemd top slice": {systemd: true, name: "berth.slice", want: cgroups.Cgroup{Name: "berth.slice", Parent: "-.slice", Systemd: true}},
		"systemd scope": {systemd: true, name: "berth-abc.slice:berth-monitor:abc",
			want: cgroups.Cgroup{Parent: "berth-abc.slice", ScopePrefix: "berth-monitor", Name: "abc", Systemd: true}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := cgroupConfig(tc.systemd, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Resources == nil || !got.Resources.SkipDevices {
				t.Errorf("resources %+v: want SkipDevices", got.Resources)
			}
			type names struct {
				Path, Name, Parent, ScopePrefix string
				Systemd                         bool
			}
			g := names{got.Path, got.Name, got.Parent, got.ScopePrefix, got.Systemd}
			w := names{tc.want.Path, tc.want.Name, tc.want.Parent, tc.want.ScopePrefix, tc.want.Systemd}
			if g != w {
				t.Errorf("got %+v, want %+v", g, w)
			}
		})
	}
	if _, err := cgroupConfig(true, "a.slice:b"); err == nil {
		t.Error("slice:prefix without name: want error")
	}
}

func TestMonitorCgroup(t *testing.T) {
	tests := map[string]struct {
		systemd bool
		pod     string
		want    string
	}{
		"cgroupfs": {pod: "/kubepods/pod1", want: "/kubepods/pod1/berth-monitor-abc"},
		"systemd":  {systemd: true, pod: "kubepods-pod1.slice", want: "kubepods-pod1.slice:berth-monitor:abc"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := &Pod{cfg: Config{ID: "abc"}, cgroup: tc.pod, systemd: tc.systemd}
			if got := p.monitorCgroup(); got != tc.want {
				t.Errorf("monitor cgroup %q, want %q", got, tc.want)
			}
		})
	}
}
