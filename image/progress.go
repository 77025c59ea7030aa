package image

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// progress watches one pull. Every byte received from the registry or unpacked moves it; when nothing moved
// for the timeout, the watchdog calls stalled. Waiting for another pull's download or unpack of a shared layer
// is not a stall: that pull has its own watchdog, and its end wakes this one up. Waiting for this pull's own
// work (a download slot, a lower layer) is not exempt, so its stalls are caught.
type progress struct {
	last    atomic.Int64 // unix nanoseconds of the last progress
	waiting atomic.Int32

	downloaded atomic.Int64 // compressed bytes received
	unpacked   atomic.Int64 // uncompressed layer bytes unpacked
}

func (p *progress) touch() { p.last.Store(time.Now().UnixNano()) }

// watch starts the watchdog; stop ends it.
func (p *progress) watch(ctx context.Context, timeout time.Duration, stalled func()) (stop func()) {
	p.touch()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(min(timeout/4, time.Second))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if p.waiting.Load() == 0 && time.Since(time.Unix(0, p.last.Load())) > timeout {
					stalled()
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// waitForOther marks the start of a wait for another pull; the returned function marks its end.
func (p *progress) waitForOther() (done func()) {
	p.waiting.Add(1)
	return func() {
		p.touch()
		p.waiting.Add(-1)
	}
}

// reader counts what r delivers into n and moves the progress.
func (p *progress) reader(r io.Reader, n *atomic.Int64) io.Reader {
	return &progressReader{r: r, p: p, n: n}
}

type progressReader struct {
	r io.Reader
	p *progress
	n *atomic.Int64
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.n.Add(int64(n))
		r.p.touch()
	}
	return n, err
}
