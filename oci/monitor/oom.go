package monitor

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/cgroups/fs2"
	"golang.org/x/sys/unix"
)

// oomWatch follows the OOM kill counts of containers' cgroup v2 directories as they change (inotify on
// memory.events, as conmon does), so that a kill is known even when the cgroup is gone by the time init's exit is
// reaped: systemd before 253 stops a scope in which the kernel OOM-killed a process and removes its cgroup as soon
// as it is empty, so a read at exit finds nothing. One inotify instance and one goroutine serve the monitor.
type oomWatch struct {
	fd int      // the inotify instance; f's descriptor, kept so that f stays non-blocking
	f  *os.File // read through the poller
	// read reads a cgroup's count: fs2.OOMKillCount, which reads cgroup files only (tests read plain ones).
	read func(dir string) (uint64, error)
	mu   sync.Mutex
	wds  map[int32]*oomCount
}

// oomCount is the highest OOM kill count seen in one cgroup.
type oomCount struct {
	dir  string
	read func(dir string) (uint64, error)
	wd   int32
	n    atomic.Uint64
}

// inotifyEventSize is the size of struct inotify_event without its name; watches of files get no name.
const inotifyEventSize = unix.SizeofInotifyEvent

func newOOMWatch() (*oomWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &oomWatch{fd: fd, f: os.NewFile(uintptr(fd), "inotify"), read: fs2.OOMKillCount, wds: make(map[int32]*oomCount)}
	go w.loop()
	return w, nil
}

// watch starts following the count of the cgroup dir, and reads it once for the kills before the watch.
func (w *oomWatch) watch(dir string) (*oomCount, error) {
	c := &oomCount{dir: dir, read: w.read}
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(dir, "memory.events"), unix.IN_MODIFY)
	if err != nil {
		return nil, fmt.Errorf("watch %s/memory.events: %w", dir, err)
	}
	c.wd = int32(wd)
	w.wds[c.wd] = c
	c.update()
	return c, nil
}

// unwatch stops following c. The kernel drops the watch itself with the cgroup (IN_IGNORED).
func (w *oomWatch) unwatch(c *oomCount) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wds[c.wd] == c {
		delete(w.wds, c.wd)
		_, _ = unix.InotifyRmWatch(w.fd, uint32(c.wd)) // EINVAL once the kernel dropped it with the cgroup
	}
}

func (w *oomWatch) loop() {
	buf := make([]byte, 32*inotifyEventSize)
	for {
		n, err := w.f.Read(buf)
		if err != nil { // closed
			return
		}
		for off := 0; off+inotifyEventSize <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			off += inotifyEventSize + int(binary.NativeEndian.Uint32(buf[off+12:]))
			w.mu.Lock()
			c := w.wds[wd]
			if mask&unix.IN_IGNORED != 0 {
				delete(w.wds, wd)
			}
			w.mu.Unlock()
			if c != nil && mask&unix.IN_MODIFY != 0 {
				c.update()
			}
		}
	}
}

// update reads the count; a cgroup that is gone keeps the last one seen.
func (c *oomCount) update() {
	n, err := c.read(c.dir)
	if err != nil {
		return
	}
	for {
		old := c.n.Load()
		if n <= old || c.n.CompareAndSwap(old, n) {
			return
		}
	}
}

// count is the highest count seen, the cgroup read once more if it is still there.
func (c *oomCount) count() uint64 {
	c.update()
	return c.n.Load()
}
