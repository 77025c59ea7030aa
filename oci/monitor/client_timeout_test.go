package monitor

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestRequestTimeout: a monitor that accepts a request and never answers does not hold a caller whose context has
// no deadline: the exchange ends after the request timeout with DeadlineExceeded.
func TestRequestTimeout(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	defer func(d time.Duration) { requestTimeout = d }(requestTimeout)
	requestTimeout = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- (&Client{dir: dir}).Start(context.Background(), "c1") }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a request the monitor never answers = %v, want DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request the monitor never answers still waits after 10s")
	}
}
