package ctr

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// SignalCgroup signals every process of container id's cgroup m, exec processes included. The cgroup is
// frozen meanwhile so that no process forks out of the signal; SIGKILL uses cgroup.kill where the
// kernel has it (cgroup v2, or the v2 hierarchy of a hybrid host).
func SignalCgroup(id string, m cgroups.Manager, sig syscall.Signal) error {
	if !m.Exists() {
		return errdefs.FailedPrecondition("container %s: signal: no cgroup", id)
	}
	if sig == unix.SIGKILL {
		if p := m.Path(""); p != "" {
			err := cgroups.WriteFile(p, "cgroup.kill", "1")
			if err == nil {
				return nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("container %s: kill: %w", id, err)
			}
		}
	}
	frozen := m.Freeze(cgroups.Frozen) == nil
	pids, err := m.GetAllPids()
	for _, pid := range pids {
		if kerr := unix.Kill(pid, sig); kerr != nil && kerr != unix.ESRCH && err == nil {
			err = kerr
		}
	}
	if frozen {
		if terr := m.Freeze(cgroups.Thawed); terr != nil && err == nil {
			err = terr
		}
	}
	if err != nil {
		return fmt.Errorf("container %s: signal all processes: %w", id, err)
	}
	return nil
}

func (s *State) signalAll(sig syscall.Signal) error {
	m, err := s.cgroup()
	if err != nil {
		return err
	}
	return SignalCgroup(s.ID, m, sig)
}
