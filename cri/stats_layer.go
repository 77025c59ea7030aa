package cri

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/berthcri/berth/internal/diskusage"
)

// layerUsage measures containers' writable layers (their overlay upper dirs) as du does, each at most once per
// layerUsageTTL: a walk costs a stat per file and the kubelet asks every few seconds. A stale value is returned at
// once while a background walk refreshes it; only the first request for a layer waits for a walk.
type layerUsage struct {
	log   *slog.Logger
	walk  func(dir string) (diskUsage, error)
	walks chan struct{} // bounds concurrent background walks

	mu        sync.Mutex
	entries   map[string]*layerEntry // by dir
	lastSweep time.Time
}

type diskUsage struct {
	bytes, inodes uint64
	at            time.Time
}

type layerEntry struct {
	usage   diskUsage
	asked   time.Time // last request, to forget removed layers
	walking bool
}

const (
	layerUsageTTL = 10 * time.Second
	// layerForgetAfter drops the measures of layers nobody asked about for this long: removed containers.
	layerForgetAfter = 5 * time.Minute
	layerWalks       = 2
)

func newLayerUsage(log *slog.Logger) *layerUsage {
	return &layerUsage{log: log, walk: du, walks: make(chan struct{}, layerWalks), entries: map[string]*layerEntry{}}
}

// get returns the usage of dir, measured at most layerUsageTTL before now unless a refresh is under way.
func (l *layerUsage) get(dir string, now time.Time) (diskUsage, error) {
	l.mu.Lock()
	l.sweep(now)
	e, ok := l.entries[dir]
	if ok {
		e.asked = now
		if now.Sub(e.usage.at) > layerUsageTTL && !e.walking {
			e.walking = true
			go l.refresh(dir)
		}
		u := e.usage
		l.mu.Unlock()
		return u, nil
	}
	l.mu.Unlock()

	u, err := l.walk(dir)
	if err != nil {
		return diskUsage{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[dir]; ok { // measured meanwhile by another first request
		return e.usage, nil
	}
	l.entries[dir] = &layerEntry{usage: u, asked: now}
	return u, nil
}

func (l *layerUsage) refresh(dir string) {
	l.walks <- struct{}{}
	u, err := l.walk(dir)
	<-l.walks
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[dir]
	if !ok {
		return
	}
	e.walking = false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		delete(l.entries, dir) // the container was removed
	case err != nil:
		l.log.Warn("measure writable layer", "dir", dir, "err", err)
	default:
		e.usage = u
	}
}

func (l *layerUsage) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < layerForgetAfter {
		return
	}
	l.lastSweep = now
	for dir, e := range l.entries {
		if now.Sub(e.asked) > layerForgetAfter && !e.walking {
			delete(l.entries, dir)
		}
	}
}

// du measures the blocks and inodes under dir (internal/diskusage).
func du(dir string) (diskUsage, error) {
	at := time.Now()
	var c diskusage.Counter
	if err := c.Add(context.Background(), dir); err != nil {
		return diskUsage{}, err
	}
	return diskUsage{bytes: c.Bytes, inodes: c.Inodes, at: at}, nil
}
