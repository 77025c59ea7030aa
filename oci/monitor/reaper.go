package monitor

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper waits for every child of the monitor, which is a subreaper: containers, the pause process,
// libcontainer's init stages and orphans reparented to it. Exits of watched pids are delivered to their
// watcher; the others are just reaped.
//
// libcontainer waits for its own helper processes by pid while it creates a container, so reaping with
// wait4(-1) then would steal their status. starting is held for reading around every child start (and
// the watch that follows it); the reaper holds it for writing while it reaps.
type reaper struct {
	starting sync.RWMutex

	mu      sync.Mutex
	watched map[int]chan unix.WaitStatus
}

func newReaper() (*reaper, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", err)
	}
	r := &reaper{watched: make(map[int]chan unix.WaitStatus)}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	go func() {
		for range sigs {
			r.starting.Lock()
			r.reap()
			r.starting.Unlock()
		}
	}()
	return r, nil
}

func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		ch := r.watched[pid]
		delete(r.watched, pid)
		r.mu.Unlock()
		if ch != nil {
			ch <- ws
		}
	}
}

// watch returns the channel that receives pid's exit status. The caller holds starting for reading
// since before it started the process.
func (r *reaper) watch(pid int) <-chan unix.WaitStatus {
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	r.watched[pid] = ch
	r.mu.Unlock()
	return ch
}
