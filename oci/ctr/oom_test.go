package ctr

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/cgroups"
)

func TestOOMKillCountAt(t *testing.T) {
	cgroups.TestMode = true // files outside cgroupfs
	t.Cleanup(func() { cgroups.TestMode = false })
	dir := t.TempDir()
	// Both hierarchies' files, so that the test reads the same count on cgroup v1 and v2 hosts.
	for file, data := range map[string]string{
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
		"memory.events":      "low 0\nhigh 0\nmax 5\noom 3\noom_kill 3\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, tc := range map[string]struct {
		paths   map[string]string
		want    uint64
		wantErr bool
	}{
		"counted":          {paths: map[string]string{"memory": dir, "": dir}, want: 3},
		"no memory cgroup": {paths: map[string]string{"cpu": dir}, wantErr: true},
		"cgroup gone":      {paths: map[string]string{"memory": filepath.Join(dir, "x"), "": filepath.Join(dir, "x")}, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := OOMKillCountAt(tc.paths)
			if n != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("OOMKillCountAt = %d, %v; want %d, error %v", n, err, tc.want, tc.wantErr)
			}
		})
	}
}
