package keylock

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// blocked reports whether lock(ctx) is still blocked after a short while; it cancels the attempt then. A free key is
// taken at once whatever the context, so a false answer is never the timer's.
func blocked(t *testing.T, lock func(context.Context) (func(), error)) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	unlock, err := lock(ctx)
	if err == nil {
		unlock()
		return false
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock with an ended context = %v, want DeadlineExceeded", err)
	}
	return true
}

// waitEntry polls key's entry, under the map's lock, until cond holds. A caller of lock counts itself a waiter, and
// calls waiting, in the same critical section in which it finds the key taken, so a count seen here proves that it
// is blocked: no sleep stands in for that proof.
func waitEntry(t *testing.T, m *Map, key, what string, cond func(*entry) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		m.mu.Lock()
		e := m.m[key]
		ok := e != nil && cond(e)
		m.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func TestLockHonoursDeadline(t *testing.T) {
	var m Map
	ctx := context.Background()
	lock := func(c context.Context) (func(), error) { return m.Lock(c, "k") }
	rlock := func(c context.Context) (func(), error) { return m.RLock(c, "k") }

	unlock, err := m.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if blocked(t, func(c context.Context) (func(), error) { return m.Lock(c, "other") }) {
		t.Error("another key waits")
	}
	if !blocked(t, lock) || !blocked(t, rlock) {
		t.Error("a held key did not block Lock and RLock")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Lock(canceled, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a canceled context = %v, want Canceled", err)
	}
	unlock()
	unlock() // a second unlock is harmless

	r1, _ := m.RLock(ctx, "k")
	r2, err := m.RLock(ctx, "k")
	if err != nil {
		t.Fatal("readers share a key:", err)
	}
	if !blocked(t, lock) {
		t.Error("a writer got a key readers hold")
	}
	// A waiting writer keeps new readers out.
	got := make(chan func())
	go func() { u, _ := m.Lock(ctx, "k"); got <- u }()
	waitEntry(t, &m, "k", "the writer waits", func(e *entry) bool { return e.writersWaiting == 1 })
	if !blocked(t, rlock) {
		t.Error("a reader overtook a waiting writer")
	}
	r1()
	r2()
	(<-got)()
	if len(m.m) != 0 {
		t.Errorf("%d keys left in the map", len(m.m))
	}
}

func TestLockOwnedWaiting(t *testing.T) {
	var m Map
	var waits atomic.Int32
	waiting := func() func() { waits.Add(1); return func() { waits.Add(-1) } }
	ctx := context.Background()
	a, b := new(int), new(int)

	unlock, err := m.LockOwned(ctx, "k", a, waiting)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() { u, _ := m.LockOwned(ctx, "k", b, waiting); got <- u }()
	waitEntry(t, &m, "k", "the second owner waits", func(e *entry) bool { return e.waiters == 1 })
	if n := waits.Load(); n != 1 {
		t.Errorf("waiting for another owner counted %d times, want 1", n)
	}
	unlock()
	(<-got)()
	if n := waits.Load(); n != 0 {
		t.Errorf("wait still counted after it ended: %d", n)
	}

	// Waiting for oneself (another goroutine of the same pull) is not waiting for another owner.
	unlock, _ = m.LockOwned(ctx, "k", a, waiting)
	if !blocked(t, func(c context.Context) (func(), error) {
		return m.LockOwned(c, "k", a, func() func() { t.Error("counted a wait for the same owner"); return func() {} })
	}) {
		t.Error("the same owner got a held key")
	}
	unlock()
	if len(m.m) != 0 {
		t.Errorf("%d keys left in the map", len(m.m))
	}
}

// TestLockExclusion: under concurrent readers and writers, some giving up at their deadline, a writer is never
// inside with anyone else, and every key is forgotten at the end.
func TestLockExclusion(t *testing.T) {
	var m Map
	var readers, writers atomic.Int32
	done := make(chan struct{})
	for g := range 16 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Millisecond)
				exclusive := (g+i)%3 == 0
				var unlock func()
				var err error
				if exclusive {
					unlock, err = m.Lock(ctx, "k")
				} else {
					unlock, err = m.RLock(ctx, "k")
				}
				cancel()
				if err != nil {
					continue
				}
				if exclusive {
					if writers.Add(1) != 1 || readers.Load() != 0 {
						t.Error("a writer is not alone")
					}
					writers.Add(-1)
				} else {
					readers.Add(1)
					if writers.Load() != 0 {
						t.Error("a reader is in with a writer")
					}
					readers.Add(-1)
				}
				unlock()
			}
		}()
	}
	for range 16 {
		<-done
	}
	if len(m.m) != 0 {
		t.Errorf("%d keys left in the map", len(m.m))
	}
}
