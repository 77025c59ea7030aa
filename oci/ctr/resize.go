package ctr

import (
	"os"

	"golang.org/x/sys/unix"
)

// TerminalSize is a terminal's size in characters.
type TerminalSize struct {
	Width, Height uint16
}

// watchResize applies every size received on sizes to the terminal whose master is master, until sizes is
// closed or stop is called; stop returns once the watcher is gone.
func watchResize(master *os.File, sizes <-chan TerminalSize) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case sz, ok := <-sizes:
				if !ok {
					return
				}
				SetWinsize(master, sz)
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// SetWinsize sets the terminal's size; the kernel sends SIGWINCH to its foreground process group. A
// terminal already closed is left alone: the size no longer matters.
func SetWinsize(master *os.File, sz TerminalSize) {
	rc, err := master.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: sz.Width, Row: sz.Height})
	})
}
