package ctr

import (
	"context"
	"slices"
	"testing"
)

// A handler's binary reaches the helper as flags before the operation, its extra args one flag each (even those
// that start with a dash); libcontainer's helper gets none of them.
func TestHelperCommandBinary(t *testing.T) {
	tests := map[string]struct {
		rt   Runtime
		want []string
	}{
		"libcontainer": {Runtime{Root: "/s/runc", Helper: "/bin/m"}, []string{HelperArg, "-root", "/s/runc", "-id", "c1", "-tty", OpCreate}},
		"binary": {Runtime{Root: "/s/rec", Systemd: true, Helper: "/bin/m",
			Binary: Binary{Path: "/usr/bin/crun", Root: "/s/crun", ExtraArgs: []string{"--debug", "--cgroup-manager=cgroupfs"}}},
			[]string{HelperArg, "-root", "/s/rec", "-id", "c1", "-systemd", "-binary", "/usr/bin/crun", "-binary-root", "/s/crun",
				"-binary-arg", "--debug", "-binary-arg", "--cgroup-manager=cgroupfs", "-tty", OpCreate}},
	}
	for name, tc := range tests {
		cmd := tc.rt.command(context.Background(), OpCreate, "c1", "-tty")
		if got := cmd.Args[1:]; !slices.Equal(got, tc.want) {
			t.Errorf("%s: helper args %q, want %q", name, got, tc.want)
		}
	}
}
