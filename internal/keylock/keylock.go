// Package keylock provides read-write locks by key (a pod id, a container id, a blob digest), created on first
// use and dropped when nobody holds or waits for them, whose waits end with the caller's context: a kubelet call
// whose deadline passes while another call holds the object returns DeadlineExceeded instead of queueing on.
package keylock

import (
	"context"
	"fmt"
	"sync"
)

// Map is a set of locks by key. The zero value is ready to use.
type Map struct {
	mu sync.Mutex
	m  map[string]*entry // keys held or waited for
}

type entry struct {
	readers        int
	writer         bool
	owner          any           // the writer's owner (LockOwned)
	waiters        int           // callers waiting, readers and writers
	writersWaiting int           // a waiting writer keeps new readers out, so that it cannot starve
	changed        chan struct{} // closed, and replaced, whenever the entry changes
}

// Lock takes key exclusively and returns its unlock, or the context's error once ctx ends first.
func (m *Map) Lock(ctx context.Context, key string) (func(), error) {
	return m.lock(ctx, key, true, nil, nil)
}

// RLock takes key shared with other readers: it waits while a writer holds key or waits for it.
func (m *Map) RLock(ctx context.Context, key string) (func(), error) {
	return m.lock(ctx, key, false, nil, nil)
}

// LockOwned is Lock on behalf of owner. When the caller has to wait for a holder other than owner, waiting is called
// once and the function it returns when the wait ends: image pulls use it to tell waiting for another pull from
// stalling.
func (m *Map) LockOwned(ctx context.Context, key string, owner any, waiting func() (done func())) (func(), error) {
	return m.lock(ctx, key, true, owner, waiting)
}

func (m *Map) lock(ctx context.Context, key string, exclusive bool, owner any, waiting func() func()) (func(), error) {
	var done func()
	defer func() {
		if done != nil {
			done()
		}
	}()
	m.mu.Lock()
	e := m.entryLocked(key)
	e.waiters++
	if exclusive {
		e.writersWaiting++
	}
	for !e.free(exclusive) {
		if waiting != nil && done == nil && !(e.writer && e.owner == owner) {
			done = waiting()
		}
		changed := e.changed
		m.mu.Unlock()
		select {
		case <-changed:
			m.mu.Lock()
		case <-ctx.Done():
			m.mu.Lock()
			e.leave(exclusive)
			e.broadcast() // readers held back by this writer's wait may go now
			m.dropLocked(key, e)
			m.mu.Unlock()
			return nil, fmt.Errorf("wait for %s: %w", key, context.Cause(ctx))
		}
	}
	e.leave(exclusive)
	if exclusive {
		e.writer, e.owner = true, owner
	} else {
		e.readers++
	}
	m.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { m.unlock(key, e, exclusive) }) }, nil
}

func (m *Map) entryLocked(key string) *entry {
	if m.m == nil {
		m.m = map[string]*entry{}
	}
	e := m.m[key]
	if e == nil {
		e = &entry{changed: make(chan struct{})}
		m.m[key] = e
	}
	return e
}

func (e *entry) leave(exclusive bool) {
	e.waiters--
	if exclusive {
		e.writersWaiting--
	}
}

func (m *Map) unlock(key string, e *entry, exclusive bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if exclusive {
		e.writer, e.owner = false, nil
	} else {
		e.readers--
	}
	e.broadcast()
	m.dropLocked(key, e)
}

// dropLocked forgets the entry of key once nobody holds or waits for it.
func (m *Map) dropLocked(key string, e *entry) {
	if e.readers == 0 && !e.writer && e.waiters == 0 {
		delete(m.m, key)
	}
}

func (e *entry) free(exclusive bool) bool {
	if exclusive {
		return !e.writer && e.readers == 0
	}
	return !e.writer && e.writersWaiting == 0
}

func (e *entry) broadcast() {
	close(e.changed)
	e.changed = make(chan struct{})
}
