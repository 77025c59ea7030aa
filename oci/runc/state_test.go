package runc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"

	"github.com/berthcri/berth/oci/ctr"
)

// ctr reads libcontainer's state.json without linking libcontainer: it must read what the pinned
// libcontainer writes.
func TestCtrReadsLibcontainerState(t *testing.T) {
	created := time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC)
	st := libcontainer.State{
		BaseState: libcontainer.BaseState{
			ID: "c1", InitProcessPid: 4242, InitProcessStartTime: 987654, Created: created,
			Config: configs.Config{Cgroups: &cgroups.Cgroup{Resources: &cgroups.Resources{CpuShares: 512, Memory: 1 << 20}}},
		},
		CgroupPaths: map[string]string{"memory": "/sys/fs/cgroup/memory/pod/c1", "": "/sys/fs/cgroup/unified/pod/c1"},
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "c1", ctr.StateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := (&ctr.Runtime{Root: root}).Load("c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "c1" || got.InitPid != 4242 || got.InitStart != 987654 || !got.Created.Equal(created) ||
		got.CgroupPaths["memory"] != st.CgroupPaths["memory"] || got.CgroupPaths[""] != st.CgroupPaths[""] ||
		got.Config.Cgroups.Resources.CpuShares != 512 || got.Config.Cgroups.Resources.Memory != 1<<20 {
		t.Errorf("ctr read %+v (cgroup resources %+v) from %s", got, got.Config.Cgroups.Resources, b)
	}
}
