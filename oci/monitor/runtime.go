package monitor

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// tuneRuntime sets the Go runtime up for a process that is idle almost all its life (GOMAXPROCS=1 comes
// from Start's environment, before the runtime makes its Ps). Measured on idle monitors: the heap is
// ~250 KiB, all allocated at start-up and per container operation, and a GC cycle leaves several hundred
// KiB of its own metadata resident, so an idle monitor is smallest when it has never collected: the
// minimum heap goal (4 MiB × GOGC/100) is not reached, and the runtime forces no periodic GC before a
// first one. A forced GC at start-up (FreeOSMemory) would cost as much.
func tuneRuntime() {
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(8 << 20)
}

// trimmer gives the heap freed after a burst of work (a crash-looping container's creates and removes)
// back to the kernel once the monitor is idle again. Small amounts are left alone: the GC it forces costs
// more than it frees.
type trimmer struct {
	mu      sync.Mutex
	timer   *time.Timer
	trimmed uint64 // heap bytes allocated as of the last trim
}

const (
	trimAfter   = 10 * time.Second // of no requests
	trimAtLeast = 1 << 20          // bytes allocated since the last trim
)

// active notes a request; the trim runs trimAfter the last one.
func (t *trimmer) active() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(trimAfter, t.trim)
		return
	}
	t.timer.Reset(trimAfter)
}

func (t *trimmer) trim() {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	if allocs := s[0].Value.Uint64(); allocs-t.trimmed >= trimAtLeast {
		debug.FreeOSMemory()
		t.trimmed = allocs
	}
}
