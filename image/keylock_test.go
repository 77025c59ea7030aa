package image

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyLocks(t *testing.T) {
	var l keyLocks
	var waits atomic.Int32
	waiting := func() func() { waits.Add(1); return func() { waits.Add(-1) } }
	ctx := context.Background()
	a, b := new(int), new(int)

	unlock, err := l.lock(ctx, "k", a, waiting)
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.lock(ctx, "other", b, waiting)
	if err != nil {
		t.Fatalf("another key is independent: %v", err)
	}
	other()

	got := make(chan func())
	go func() {
		u, _ := l.lock(ctx, "k", b, waiting)
		got <- u
	}()
	time.Sleep(20 * time.Millisecond)
	if n := waits.Load(); n != 1 {
		t.Errorf("waiting for another owner counted %d times, want 1", n)
	}
	select {
	case <-got:
		t.Fatal("second owner got a held lock")
	default:
	}
	unlock()
	(<-got)()
	if n := waits.Load(); n != 0 {
		t.Errorf("wait still counted after it ended: %d", n)
	}

	// Waiting for oneself (another goroutine of the same pull) is not waiting for another owner.
	unlock, _ = l.lock(ctx, "k", a, waiting)
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.lock(tctx, "k", a, func() func() { t.Error("counted a wait for the same owner"); return func() {} }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lock with an ended context = %v", err)
	}
	unlock()
	if len(l.m) != 0 {
		t.Errorf("%d keys left in the map", len(l.m))
	}
}
