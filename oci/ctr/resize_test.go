package ctr

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWatchResize(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer master.Close()
	size := func() TerminalSize {
		ws, err := unix.IoctlGetWinsize(int(master.Fd()), unix.TIOCGWINSZ)
		if err != nil {
			t.Fatal(err)
		}
		return TerminalSize{Width: ws.Col, Height: ws.Row}
	}
	waitSize := func(want TerminalSize) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); size() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("size = %+v, want %+v", size(), want)
			}
		}
	}

	sizes := make(chan TerminalSize)
	stop := watchResize(master, sizes)
	for _, want := range []TerminalSize{{80, 24}, {132, 43}} {
		sizes <- want
		waitSize(want)
	}
	stop() // returns with sizes still open: the exec ended first
	select {
	case sizes <- TerminalSize{1, 1}:
		t.Error("a size was read after stop")
	case <-time.After(50 * time.Millisecond):
	}

	closed := make(chan TerminalSize, 1)
	closed <- TerminalSize{100, 50}
	close(closed)
	stop = watchResize(master, closed)
	waitSize(TerminalSize{100, 50})
	stop() // the watcher already ended with its channel
}
