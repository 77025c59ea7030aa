package monitor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// The steps of a start and of a remove that need no libcontainer code run in the monitor itself when the container
// runs under libcontainer: a helper is a fork+exec of the monitor's binary and a load of libcontainer's state, about
// 10 ms of each. They follow the pinned runc's libcontainer (v1.5.3) step by step; what only libcontainer does
// (another runtime's start, the systemd driver's unit, poststop hooks, resctrl groups) keeps the helper.

// execFifoName is libcontainer's exec fifo in a container's state dir, which its init blocks writing to until start.
const execFifoName = "exec.fifo"

// releaseInit runs a created container's process, as libcontainer's Container.Exec does: it reads the exec fifo in
// stateDir until EOF (init writes a byte, then execs the process), requires at least a byte, and removes the fifo.
// initPidfd, a pidfd of init, ends the wait when init dies first; timeout bounds it. The fifo is opened without
// blocking and polled with the pidfd, so nothing is left waiting on it once releaseInit returns.
func releaseInit(stateDir string, initPidfd int, timeout time.Duration) error {
	path := filepath.Join(stateDir, execFifoName)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("exec fifo: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	var got int
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("init did not release its exec fifo within %v: %w", timeout, context.DeadlineExceeded)
		}
		// A reader that opened before any writer gets no POLLHUP, so this wakes on init's byte and close, or its exit.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(initPidfd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return os.NewSyscallError("poll", err)
		}
		initDead := fds[1].Revents != 0
		if fds[0].Revents == 0 && !initDead {
			continue
		}
		n, eof, err := readNonblock(fd)
		if err != nil {
			return fmt.Errorf("exec fifo: %w", &os.PathError{Op: "read", Path: path, Err: err})
		}
		got += n
		switch {
		case initDead && (!eof || got == 0):
			return errors.New("container process is already dead")
		case !eof:
			continue
		case got == 0:
			return errors.New("cannot start an already running container")
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
}

// readNonblock reads the non-blocking fd until it has nothing more now (EAGAIN) or ends (eof), and returns how many
// bytes it read.
func readNonblock(fd int) (n int, eof bool, err error) {
	var buf [64]byte
	for {
		m, err := unix.Read(fd, buf[:])
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return n, false, nil
		case err != nil:
			return n, false, err
		case m == 0:
			return n, true, nil
		default:
			n += m
		}
	}
}

// destroyExited removes what libcontainer's destroy would of a container whose init has exited and been reaped, as
// it does with the cgroupfs driver and neither poststop hooks nor an intelRdt group: it kills what is left in the
// cgroup when the container shares a PID namespace (those outlive init), removes the cgroup with its child cgroups
// (cgroups: one path per v1 controller, or v2's under ""), and removes libcontainer's state dir.
func (s *server) destroyExited(c *container) error {
	if c.sharesPID {
		if err := s.killAll(c); err != nil {
			// As libcontainer, go on: the cgroup's removal then fails if a process is left.
			s.log.Warn("kill remaining processes", "id", c.id, "err", err)
		}
	}
	// RemovePaths deletes the removed paths from its map: c.cgroups stays whole for a retry.
	if err := cgroups.RemovePaths(maps.Clone(c.cgroups)); err != nil {
		return fmt.Errorf("container %s: remove cgroup: %w", c.id, err)
	}
	if err := os.RemoveAll(filepath.Join(s.helpers.Root, c.id)); err != nil {
		return fmt.Errorf("container %s: remove state: %w", c.id, err)
	}
	return nil
}
