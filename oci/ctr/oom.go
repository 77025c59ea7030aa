package ctr

import (
	"fmt"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
)

// OOMKillCountAt is the number of processes the kernel OOM-killed in the container cgroup whose
// State.CgroupPaths are paths, read without loading the container: for the pod monitor, which keeps no
// libcontainer state in memory. Read it before Destroy removes the cgroup.
func OOMKillCountAt(paths map[string]string) (uint64, error) {
	path, read := paths["memory"], fs.OOMKillCount
	if cgroups.IsCgroup2UnifiedMode() {
		path, read = paths[""], fs2.OOMKillCount
	}
	if path == "" {
		return 0, fmt.Errorf("oom kill count: no memory cgroup in %v", paths)
	}
	n, err := read(path)
	if err != nil {
		return 0, fmt.Errorf("oom kill count: %w", err)
	}
	return n, nil
}
