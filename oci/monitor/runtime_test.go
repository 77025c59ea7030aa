package monitor

import (
	"runtime/metrics"
	"testing"
)

var sink []byte

func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The trimmer frees memory only after a burst of allocation.
func TestTrimmer(t *testing.T) {
	start := heapAllocs()
	tr := trimmer{trimmed: start}
	tr.trim()
	if tr.trimmed != start {
		t.Errorf("trimmed after %d bytes allocated", heapAllocs()-start)
	}
	for range 4 {
		sink = make([]byte, trimAtLeast/2)
	}
	tr.trim()
	if tr.trimmed < start+2*trimAtLeast {
		t.Errorf("not trimmed after %d bytes allocated", heapAllocs()-start)
	}
}
