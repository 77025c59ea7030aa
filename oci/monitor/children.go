package monitor

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// children reaps the monitors this process started (Start) when they exit while it runs: one goroutine for them all
// that, on each SIGCHLD, reaps every monitor whose pidfd says it has exited. A wait per monitor would hold a
// goroutine (8 KiB of stack) per pod, and os.Process.Wait a thread blocked in waitid (48 KiB more). Other children
// (CNI plugins, helpers) are left to their own waits: each reap names a monitor's pidfd, never "any child".
type children struct {
	mu     sync.Mutex
	pidfds map[int]int // pid → pidfd from clone
	sig    chan os.Signal
}

var startedMonitors children

// add takes over pidfd, of the child pid, and reaps the child once it has exited.
func (c *children) add(pid, pidfd int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sig == nil {
		c.pidfds = map[int]int{}
		c.sig = make(chan os.Signal, 1)
		signal.Notify(c.sig, unix.SIGCHLD)
		go c.run()
	}
	c.pidfds[pid] = pidfd
	c.reapLocked() // it may have exited before SIGCHLD was asked for
}

func (c *children) run() {
	for range c.sig { // one SIGCHLD may stand for several exits
		c.mu.Lock()
		c.reapLocked()
		c.mu.Unlock()
	}
}

func (c *children) reapLocked() {
	for pid, fd := range c.pidfds {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		if n == 0 && (err == nil || err == unix.EINTR) {
			continue // runs, or not known yet: the next SIGCHLD tells
		}
		// Exited (a pidfd is readable from then on), or a pidfd no wait could use: reap and forget it. WNOHANG
		// keeps a wait that would block from holding the lock.
		var info unix.Siginfo
		_ = unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil)
		unix.Close(fd)
		delete(c.pidfds, pid)
	}
}
