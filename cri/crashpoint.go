package cri

import (
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// testCrashAt names a point at which berthd kills itself with SIGKILL, so that the kill -9 integration tests
// (cmd/berthd/faults_integration_test.go) crash at exactly that point: BERTH_TEST_CRASH_AT, read once at start.
// Test-only: unset (always, outside those tests), crashPoint does nothing.
var testCrashAt = os.Getenv("BERTH_TEST_CRASH_AT")

// testHoldAt and testHoldFIFO (BERTH_TEST_HOLD_AT=<point>=<fifo>, test-only like testCrashAt) hold the first call
// that reaches the point until the test lets it go, so that the slow-call test
// (cmd/berthd/slowcall_integration_test.go) times out a call that surely got there while its work is not done:
// opening the fifo blocks until the test opens it for writing (the test knows then that the call is held), reading
// it until the test closes it.
var (
	testHoldAt, testHoldFIFO, _ = strings.Cut(os.Getenv("BERTH_TEST_HOLD_AT"), "=")
	testHoldOnce                sync.Once
)

// crashPoint is a point of a test's choosing: where BERTH_TEST_CRASH_AT kills berthd or BERTH_TEST_HOLD_AT holds
// a call.
func crashPoint(name string) {
	if testCrashAt == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // nothing after the point may run while the signal is delivered
	}
	if testHoldAt == name && testHoldFIFO != "" {
		testHoldOnce.Do(func() {
			// A fifo the test did not make ends the hold at once; the test, which waits for it, fails then.
			if f, err := os.Open(testHoldFIFO); err == nil {
				io.Copy(io.Discard, f)
				f.Close()
			}
		})
	}
}
