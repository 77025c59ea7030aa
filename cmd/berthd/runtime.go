package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is berthd's GOGC when the environment sets none. berthd's live heap is small (about 2 MB, and 15–20 KiB
// a pod), so at GOGC=100 the heap's headroom, as large again, is much of what it holds beside its binary's pages.
// Measured with hack/bench/node.sh at 110 idle pods (load 5–15): GOGC=50 takes berthd's RSS from 29.2–30.0 to 27.2
// MB (issue 16's goal: 30), and its CPU time under the kubelet's steady load (100 pods, 1 min) from 4.6 to 5.1 s,
// +10–17% over two pairs of runs, against containerd 2.4's 16.7 s (0.28× → 0.31×; the goal: 0.5×).
const gcPercent = 50

// tuneRuntime sets berthd's GC target unless GOGC is set, which stays the operator's.
func tuneRuntime() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}
