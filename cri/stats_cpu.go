package cri

import (
	"sync"
	"time"
)

// cpuSampler turns cumulative CPU time into usage_nano_cores (CPU nanoseconds per second) from the previous
// reading of the same container or pod, as containerd and cAdvisor do, with no goroutine of its own. A reading
// less than minCPUInterval after the previous one reuses that one's rate: two callers polling together (the
// kubelet's summary and its metrics) would otherwise measure over a few milliseconds.
type cpuSampler struct {
	mu        sync.Mutex
	last      map[string]cpuSample
	lastSweep time.Time
}

type cpuSample struct {
	at      time.Time
	usage   uint64 // cumulative CPU nanoseconds
	rate    uint64 // nanocores between the two readings before this one
	hasRate bool
}

const (
	minCPUInterval = time.Second
	// cpuSampleTTL drops the readings of what was not asked about for this long: removed containers and pods.
	cpuSampleTTL = 5 * time.Minute
)

// observe records a reading of key and returns the rate since the previous one; ok is false on a first reading.
func (c *cpuSampler) observe(key string, usage uint64, at time.Time) (nanoCores uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	if at.Sub(c.lastSweep) > cpuSampleTTL {
		for k, s := range c.last {
			if at.Sub(s.at) > cpuSampleTTL {
				delete(c.last, k)
			}
		}
		c.lastSweep = at
	}
	prev, seen := c.last[key]
	switch {
	case !seen || usage < prev.usage || !at.After(prev.at):
		// First reading, or the counter or the clock went back: start over.
		c.last[key] = cpuSample{at: at, usage: usage}
		return 0, false
	case at.Sub(prev.at) < minCPUInterval:
		return prev.rate, prev.hasRate
	}
	rate := uint64(float64(usage-prev.usage) / float64(at.Sub(prev.at)) * float64(time.Second))
	c.last[key] = cpuSample{at: at, usage: usage, rate: rate, hasRate: true}
	return rate, true
}
