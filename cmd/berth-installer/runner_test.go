package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHostRunnerTimeout: a host command that hangs (a systemctl waiting on a stuck unit) is killed after the
// runner's timeout instead of holding the installer.
func TestHostRunnerTimeout(t *testing.T) {
	r := hostRunner{root: "/"}
	r.timeout = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), "sleep", "60") }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
			t.Errorf("a hanging command = %v, want a timeout error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a hanging command still holds the runner after 10s")
	}
}
