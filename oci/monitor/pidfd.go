package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// process is a pidfd: a handle on one process that a reused pid cannot redirect. It is non-blocking, so a wait
// parks its goroutine in the Go runtime's netpoller (one epoll for every pidfd of the process), not on a thread.
type process struct {
	pid     int
	f       *os.File
	closed  context.Context // done once close was called: waits return
	setDone context.CancelFunc
}

// errExited is the error of a process that has exited.
var errExited = errors.New("exited")

// openProcess opens a pidfd of pid and checks that it is the process that started at start (clock ticks since
// boot, /proc/<pid>/stat field 22): the pid may name a later process. start 0 is not checked (a monitor older than
// this berthd does not report it). A process that is gone is an error wrapping errExited.
func openProcess(pid int, start uint64) (*process, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("process %d: %w", pid, errExited)
	}
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	p := newPidfd(pid, fd)
	// Read after the pidfd is open: if the start time still matches, the pidfd is of that process.
	if start != 0 && ctr.ProcessStart(pid) != start {
		p.close()
		return nil, fmt.Errorf("process %d: %w (its pid is another process's now)", pid, errExited)
	}
	return p, nil
}

// newProcess takes over fd, a pidfd of pid from clone (SysProcAttr.PidFD): it is the child's by construction.
func newProcess(pid, fd int) (*process, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	return newPidfd(pid, fd), nil
}

func newPidfd(pid, fd int) *process {
	closed, setDone := context.WithCancel(context.Background())
	return &process{pid: pid, f: os.NewFile(uintptr(fd), "pidfd "+strconv.Itoa(pid)), closed: closed, setDone: setDone}
}

// control runs fn on the pidfd (File.Fd would make it blocking, and take it off the netpoller).
func (p *process) control(fn func(fd int) error) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// exited says whether the process has exited (a zombie has).
func (p *process) exited() bool {
	var n int
	err := p.control(func(fd int) (err error) {
		n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		return err
	})
	return err != nil || n > 0
}

// wait returns nil once the process exited, or an error when ctx ends or the pidfd is closed first. Each wait
// polls a duplicate of the pidfd, so that one waiter's deadline does not end another's wait.
func (p *process) wait(ctx context.Context) error {
	var dup int
	if err := p.control(func(fd int) (err error) {
		dup, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		return err
	}); err != nil {
		return fmt.Errorf("wait for process %d: %w", p.pid, err)
	}
	f := os.NewFile(uintptr(dup), p.f.Name()) // non-blocking like the original: O_NONBLOCK is shared
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	interrupt := func() { f.SetReadDeadline(time.Unix(1, 0)) }
	stop, stopClosed := context.AfterFunc(ctx, interrupt), context.AfterFunc(p.closed, interrupt)
	defer stop()
	defer stopClosed()
	// The callback says whether the pidfd is readable; until it is, the netpoller waits for it.
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		var n int
		n, perr = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		return n > 0 || perr != nil && perr != unix.EINTR
	})
	if p.closed.Err() != nil {
		return fmt.Errorf("wait for process %d: %w", p.pid, os.ErrClosed)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil && perr != nil {
		err = os.NewSyscallError("poll", perr)
	}
	return err
}

// signal sends sig to the process; one that has exited is an error wrapping errExited.
func (p *process) signal(sig syscall.Signal) error {
	err := p.control(func(fd int) error { return unix.PidfdSendSignal(fd, sig, nil, 0) })
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process %d: %w", p.pid, errExited)
	}
	return err
}

// namespace opens the process's namespace of kind (/proc/<pid>/ns/<kind>). The pidfd is checked after the open: a
// process that still runs then owned its pid during the open, so the namespace is its own, never that of a later
// process given the pid. An exited process is an error wrapping errdefs.ErrFailedPrecondition.
func (p *process) namespace(kind string) (*os.File, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(p.pid) + "/ns/" + kind)
	if err == nil && !p.exited() {
		return f, nil
	}
	if f != nil {
		f.Close()
	}
	if err == nil || errors.Is(err, os.ErrNotExist) || p.exited() {
		return nil, fmt.Errorf("%s namespace of process %d: %w: %w", kind, p.pid, errExited, errdefs.ErrFailedPrecondition)
	}
	return nil, fmt.Errorf("%s namespace of process %d: %w", kind, p.pid, err)
}

func (p *process) close() error {
	p.setDone()
	return p.f.Close()
}
