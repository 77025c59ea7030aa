package image

import (
	"context"
	"sync"
)

// keyLocks is a set of mutexes by key whose lock gives up when the context ends. Concurrent pulls use it so
// that a blob is downloaded once and a chain id unpacked once: the second pull waits, then finds it done.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock // only keys that are held
}

type keyLock struct {
	owner any
	freed chan struct{} // closed when owner unlocks
}

// lock takes the mutex of key for owner and returns its unlock. While another owner holds it, lock has called
// waiting and calls the function waiting returned once it holds the mutex or gives up.
func (l *keyLocks) lock(ctx context.Context, key string, owner any, waiting func() (done func())) (func(), error) {
	var done func()
	defer func() {
		if done != nil {
			done()
		}
	}()
	for {
		l.mu.Lock()
		if l.m == nil {
			l.m = map[string]*keyLock{}
		}
		k := l.m[key]
		if k == nil {
			k = &keyLock{owner: owner, freed: make(chan struct{})}
			l.m[key] = k
			l.mu.Unlock()
			return func() { l.unlock(key, k) }, nil
		}
		if done == nil && k.owner != owner {
			done = waiting()
		}
		freed := k.freed
		l.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

func (l *keyLocks) unlock(key string, k *keyLock) {
	l.mu.Lock()
	delete(l.m, key)
	close(k.freed)
	l.mu.Unlock()
}
