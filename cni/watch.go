package cni

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// rescanInterval catches what the watches cannot: a conf or bin dir made after start, or one replaced.
	rescanInterval = 5 * time.Second
	// settleDelay lets a burst of events (a file being copied in) pass before the config is loaded again.
	settleDelay = 50 * time.Millisecond
)

// watcher keeps the current network config: loaded at start, again after changes in the conf and bin dirs
// (fsnotify) and every rescanInterval.
type watcher struct {
	confDir string
	binDirs []string
	log     *slog.Logger
	fsw     *fsnotify.Watcher

	mu   sync.RWMutex
	conf *Config
	err  error // why there is no usable config; nil when conf is set
	// loading serialises reloads (the watcher's and SetPodCIDRs'), so that a load that read the dir before a
	// change never replaces one that read it after.
	loading sync.Mutex

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newWatcher(confDir string, binDirs []string, log *slog.Logger) (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{confDir: confDir, binDirs: binDirs, log: log, fsw: fsw, stop: make(chan struct{}), done: make(chan struct{})}
	w.addWatches()
	w.reload()
	go w.run()
	return w, nil
}

// current returns the config, or why there is none ("no network config found in /etc/cni/net.d").
func (w *watcher) current() (*Config, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.conf, w.err
}

func (w *watcher) close() {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.fsw.Close()
	})
}

func (w *watcher) run() {
	defer close(w.done)
	tick := time.NewTicker(rescanInterval)
	defer tick.Stop()
	settle := time.NewTimer(settleDelay)
	settle.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.fsw.Events:
			settle.Reset(settleDelay)
		case err := <-w.fsw.Errors:
			// An overflowed queue lost events: load again, as after any change.
			w.log.Debug("network config watch", "err", err)
			settle.Reset(settleDelay)
		case <-settle.C:
			w.reload()
		case <-tick.C:
			w.addWatches()
			w.reload()
		}
	}
}

// addWatches watches the dirs not watched yet; those that do not exist yet are tried again at the next rescan.
func (w *watcher) addWatches() {
	watched := w.fsw.WatchList()
	for _, dir := range append([]string{w.confDir}, w.binDirs...) {
		if !slices.Contains(watched, dir) {
			_ = w.fsw.Add(dir) // retried at the next rescan, which reloads anyway: a missing watch only delays a change
		}
	}
}

// reload loads the config and logs when the network becomes ready, unready or changes.
func (w *watcher) reload() {
	w.loading.Lock()
	defer w.loading.Unlock()
	conf, err := Load(w.confDir, w.binDirs)
	w.mu.Lock()
	prev, prevErr := w.conf, w.err
	w.conf, w.err = conf, err
	w.mu.Unlock()
	switch {
	case err != nil && (prevErr == nil || prevErr.Error() != err.Error()):
		w.log.Warn("pod network not ready", "reason", err)
	case err == nil && (prev == nil || prev.File != conf.File || !bytes.Equal(prev.List.Bytes, conf.List.Bytes)):
		w.log.Info("pod network config loaded", "file", conf.File, "network", conf.List.Name)
	}
}
