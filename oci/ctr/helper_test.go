package ctr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunTimeout: a helper that hangs is killed after the runtime's helper timeout and its run fails saying so;
// a child that keeps the helper's stdout open does not hold the caller either.
func TestRunTimeout(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "helper")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\nsleep 5 2>/dev/null &\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{Root: t.TempDir(), Helper: helper}
	r.HelperTimeout = 200 * time.Millisecond
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := r.Run(OpUpdate, "c1", nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
			t.Errorf("a hanging helper = %v, want a timeout error", err)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("the run took %s: it waited for the child holding the helper's stdout", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a hanging helper still holds Run after 15s")
	}
}
