package monitor

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A monitor that cannot record an exit exits, so that berthd, which waits on its pidfd, takes over: else berthd
// would never learn of the exit.
func TestExitRecordFailureEndsMonitor(t *testing.T) {
	e := newEnv(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	b := e.bundle("p1", "c1", []string{"true"})
	if err := c.Create(ctx, CreateRequest{ID: "c1", Bundle: b}); err != nil {
		t.Fatal(err)
	}
	// Neither the reserved record nor a new file can take the exit: both names are directories.
	for _, name := range []string{".exit.json.reserved", ExitFileName} {
		os.RemoveAll(filepath.Join(b, name))
		if err := os.Mkdir(filepath.Join(b, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Wait(wctx); err != nil {
		t.Fatalf("the monitor still runs 10 s after it could not record an exit: %v", err)
	}
}
