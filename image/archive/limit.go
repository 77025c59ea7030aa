package archive

import (
	"fmt"
	"sync/atomic"

	"github.com/berthcri/berth/internal/errdefs"
)

// Limit bounds what the layers of one image unpack. It counts every byte of their tar streams after decompression
// (headers and padding too, so a bomb of empty entries counts like one of zeros), the holes of sparse files (which
// cost no stream bytes but are what a reader of the file gets, and what skipping them costs) and the files copied up
// from lower layers for hard links. Layers unpack in parallel, so it is safe for concurrent use. A nil *Limit
// bounds nothing.
type Limit struct {
	max  int64
	name string // the setting it comes from and its value, for errors
	used atomic.Int64
}

// NewLimit returns a limit of max bytes; name is the setting that chose it, e.g.
// "registry.max_unpacked_size (64GiB)".
func NewLimit(max int64, name string) *Limit {
	return &Limit{max: max, name: name}
}

// Used is how many bytes were taken so far.
func (l *Limit) Used() int64 {
	if l == nil {
		return 0
	}
	return l.used.Load()
}

func (l *Limit) take(n int64) error {
	if l == nil || n <= 0 {
		return nil
	}
	if l.used.Add(n) > l.max {
		return l.exceeded()
	}
	return nil
}

// fits reports, without taking anything, an entry of n bytes that could never fit what is left.
func (l *Limit) fits(n int64) error {
	if l == nil || n <= l.max-l.used.Load() {
		return nil
	}
	return fmt.Errorf("%d bytes: %w", n, l.exceeded())
}

// ErrTooBig is what a pull's layers wrap when they unpack to more than their Limit: ResourceExhausted for the
// kubelet, told apart from a registry's "too many requests" by whoever counts why pulls fail (metrics).
var ErrTooBig = fmt.Errorf("too big: %w", errdefs.ErrResourceExhausted)

func (l *Limit) exceeded() error {
	return fmt.Errorf("the image unpacks to more than %s: %w", l.name, ErrTooBig)
}

func (l *Limit) give(n int64) {
	if l != nil {
		l.used.Add(-n)
	}
}

// take charges n bytes of this layer to the limit.
func (a *applier) take(n int64) error {
	if a.limit == nil || n <= 0 {
		return nil
	}
	a.taken += n
	return a.limit.take(n)
}
