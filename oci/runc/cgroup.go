package runc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// subCgroup is a child cgroup of a container that holds one exec and everything it forks, so that the
// whole tree can be killed. On cgroup v1 it exists only in the freezer hierarchy (no memory cgroup is
// made and left dying per exec probe); on cgroup v2 it is a child of the container's cgroup.
type subCgroup struct {
	name   string // relative to the container's cgroup
	ctrl   string // controller key for libcontainer's Process.SubCgroupPaths
	dir    string
	parent string
	v2     bool
}

// newSubCgroup makes the exec's cgroup, or returns nil when the container's cgroup has no place for one
// (no freezer on cgroup v1): the exec then runs in the container's cgroup and only its first process
// can be killed.
func (c *Container) newSubCgroup(name string) (*subCgroup, error) {
	s := &subCgroup{name: name}
	if cgroups.IsCgroup2UnifiedMode() {
		s.ctrl, s.parent, s.v2 = "", c.cg.Path(""), true
	} else {
		s.ctrl, s.parent = "freezer", c.cg.Path("freezer")
	}
	if s.parent == "" {
		return nil, nil
	}
	s.dir = filepath.Join(s.parent, name)
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("exec cgroup: %w", err)
	}
	return s, nil
}

func (s *subCgroup) pids() ([]int, error) {
	return cgroups.GetAllPids(s.dir)
}

// kill kills every process of the sub-cgroup.
func (s *subCgroup) kill() error {
	if s.v2 {
		err := cgroups.WriteFile(s.dir, "cgroup.kill", "1")
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return err
		}
		// Kernels before 5.14: no cgroup.kill, and no freezer to stop forks; repeat until empty.
		for range 100 {
			pids, err := s.pids()
			if err != nil || len(pids) == 0 {
				return err
			}
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("exec processes keep forking")
	}
	if err := s.freeze(true); err != nil {
		return err
	}
	pids, err := s.pids()
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	if terr := s.freeze(false); err == nil {
		err = terr
	}
	return err
}

// freeze sets the v1 freezer state and waits until the kernel reports it.
func (s *subCgroup) freeze(on bool) error {
	want := string(cgroups.Thawed)
	if on {
		want = string(cgroups.Frozen)
	}
	if err := cgroups.WriteFile(s.dir, "freezer.state", want); err != nil {
		return err
	}
	for range 1000 {
		got, err := cgroups.ReadFile(s.dir, "freezer.state")
		if err != nil {
			return err
		}
		if strings.TrimSpace(got) == want {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("freezer %s: state not %s", s.dir, want)
}

// release moves processes left behind by an exec that ended (daemons it started) back to the
// container's cgroup, then removes the sub-cgroup.
func (s *subCgroup) release() error {
	for range 10 {
		pids, err := s.pids()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if err := cgroups.WriteCgroupProc(s.parent, pid); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("move exec process %d back to the container cgroup: %w", pid, err)
			}
		}
	}
	return s.remove()
}

func (s *subCgroup) remove() error {
	if err := cgroups.RemovePath(s.dir); err != nil {
		return fmt.Errorf("remove exec cgroup: %w", err)
	}
	return nil
}
