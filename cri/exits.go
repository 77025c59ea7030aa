package cri

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
)

// exitWatcher tells berthd when a container's monitor recorded its exit: the monitor renames exit.json into the
// container's bundle dir, and inotify reports it. Nothing polls.
type exitWatcher struct {
	w      *fsnotify.Watcher
	onExit func(id string)
	log    *slog.Logger

	mu      sync.Mutex
	bundles map[string]string // bundle dir → container id
	next    chan struct{}     // closed, and replaced, at each recorded exit (announce)
}

func newExitWatcher(onExit func(id string), log *slog.Logger) (*exitWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	e := &exitWatcher{w: w, onExit: onExit, log: log, bundles: map[string]string{}, next: make(chan struct{})}
	go e.run()
	return e, nil
}

// watch starts watching a container's bundle. If the exit is already recorded, onExit runs at once.
func (e *exitWatcher) watch(id, bundle string) error {
	e.mu.Lock()
	e.bundles[bundle] = id
	e.mu.Unlock()
	if err := e.w.Add(bundle); err != nil {
		e.unwatch(bundle)
		return err
	}
	if _, err := os.Stat(filepath.Join(bundle, monitor.ExitFileName)); err == nil {
		go e.onExit(id)
	}
	return nil
}

func (e *exitWatcher) unwatch(bundle string) {
	e.mu.Lock()
	_, ok := e.bundles[bundle]
	delete(e.bundles, bundle)
	e.mu.Unlock()
	if ok {
		_ = e.w.Remove(bundle) // gone already when the dir was removed
	}
}

func (e *exitWatcher) close() error { return e.w.Close() }

// nextExit is closed when the next exit is recorded: a stop waits on it rather than polling.
func (e *exitWatcher) nextExit() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.next
}

// announce wakes whoever waits on nextExit.
func (e *exitWatcher) announce() {
	e.mu.Lock()
	close(e.next)
	e.next = make(chan struct{})
	e.mu.Unlock()
}

func (e *exitWatcher) run() {
	for {
		select {
		case ev, ok := <-e.w.Events:
			if !ok {
				return
			}
			if filepath.Base(ev.Name) != monitor.ExitFileName || !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) {
				continue
			}
			e.mu.Lock()
			id, watched := e.bundles[filepath.Dir(ev.Name)]
			e.mu.Unlock()
			if watched {
				e.onExit(id)
			}
		case err, ok := <-e.w.Errors:
			if !ok {
				return
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				e.log.Error("exit watcher", "err", err)
				continue
			}
			// Events were lost: look at every watched bundle.
			e.log.Warn("exit watcher overflowed; rescanning")
			e.mu.Lock()
			ids := make(map[string]string, len(e.bundles))
			for b, id := range e.bundles {
				ids[b] = id
			}
			e.mu.Unlock()
			for b, id := range ids {
				if _, err := os.Stat(filepath.Join(b, monitor.ExitFileName)); err == nil {
					e.onExit(id)
				}
			}
		}
	}
}

// onExit records an exit the monitor wrote. It is called by the exit watcher and is idempotent.
func (s *RuntimeServer) onExit(id string) {
	rec, ok := s.containers.Get(id)
	if !ok || rec.State == ctrExited {
		return
	}
	e, err := monitor.ReadExit(rec.Bundle)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			s.log.Error("read container exit", "container", id, "err", err)
		}
		return
	}
	if err := s.markExited(id, e, ""); err != nil {
		s.log.Error("record container exit", "container", id, "err", err)
	}
}

func (s *RuntimeServer) markExited(id string, e *monitor.Exit, message string) error {
	return s.recordExit(id, e, exitReason(e), message)
}

// recordExit moves the container to exited with e, reason and message, unless it is there already.
func (s *RuntimeServer) recordExit(id string, e *monitor.Exit, reason, message string) error {
	exited := false
	_, err := s.containers.Update(id, func(c *containerRecord) error {
		if c.State == ctrExited {
			return nil
		}
		if err := c.transition(ctrExited); err != nil {
			return err
		}
		exited = true
		c.ExitCode = int32(e.ExitCode)
		c.Reason = reason
		c.Message = message
		c.FinishedAt = e.FinishedAt.UnixNano()
		if c.StartedAt == 0 && !e.StartedAt.IsZero() {
			c.StartedAt = e.StartedAt.UnixNano()
		}
		return nil
	})
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err == nil {
		if rec, ok := s.containers.Get(id); ok {
			s.exits.unwatch(rec.Bundle)
			if exited {
				s.opts.Metrics.exitRecorded(e.OOMKilled, e.FinishedAt)
				s.exits.announce()
				s.emitContainerEvent(id, rec.PodID, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
				s.nriStopped(s.watchCtx, id)
			}
		}
	}
	return err
}
