package cri

import (
	"os"
	"syscall"
)

// testCrashAt names a point at which berthd kills itself with SIGKILL, so that the kill -9 integration tests
// (cmd/berthd/faults_integration_test.go) crash at exactly that point: BERTH_TEST_CRASH_AT, read once at start.
// Test-only: unset (always, outside those tests), crashPoint does nothing.
var testCrashAt = os.Getenv("BERTH_TEST_CRASH_AT")

func crashPoint(name string) {
	if testCrashAt == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // nothing after the point may run while the signal is delivered
	}
}
