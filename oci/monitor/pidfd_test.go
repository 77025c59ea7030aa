package monitor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/berthcri/berth/oci/ctr"
)

func TestProcessWait(t *testing.T) {
	cmd := exec.Command("sleep", "1034")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() { cmd.Process.Kill(); <-done }()
	pid := cmd.Process.Pid
	if _, err := openProcess(pid, ctr.ProcessStart(pid)+1); !errors.Is(err, errExited) {
		t.Fatalf("openProcess with another start time = %v, want errExited", err)
	}
	p, err := openProcess(pid, ctr.ProcessStart(pid))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait on a running process = %v, want the context's deadline", err)
	}
	if p.exited() {
		t.Error("exited() of a running process")
	}
	// Several waiters, as berthd's watch and a Shutdown.
	waits := make(chan error, 2)
	for range 2 {
		go func() { waits <- p.wait(context.Background()) }()
	}
	cmd.Process.Kill()
	for range 2 {
		select {
		case err := <-waits:
			if err != nil {
				t.Errorf("wait on a killed process = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("wait did not return after the process was killed")
		}
	}
	if !p.exited() {
		t.Error("exited() of a killed process is false")
	}
	p.close()
	if err := p.wait(context.Background()); err == nil {
		t.Error("wait on a closed pidfd = nil, want an error")
	}
}

// close ends the waits in progress, with an error: the process did not exit.
func TestProcessCloseEndsWait(t *testing.T) {
	cmd := exec.Command("sleep", "1035")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	p, err := openProcess(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- p.wait(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	p.close()
	select {
	case err := <-waited:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("wait ended by close = %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not end the wait")
	}
}
