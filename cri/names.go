package cri

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
)

// names reserves pod and container names (metadata + attempt) so that one name maps to one object, and makes a
// kubelet retry of a slow RunPodSandbox/CreateContainer get the first call's result instead of an error: the work
// runs detached from the request (see detached) and its result waits here for whoever asks for the name next.
type names struct {
	kind  string // what is named, for errors: "pod sandbox", "container"
	mu    sync.Mutex
	byKey map[string]*reservation
}

type reservation struct {
	id   string
	done chan struct{} // closed when the creation finished
	err  error         // the creation's error; the reservation is gone then
	// delivered is set once a caller received the result; a later call for the same name is then a conflict.
	delivered bool
}

func newNames(kind string) *names { return &names{kind: kind, byKey: map[string]*reservation{}} }

// once makes the object named key once: the first call reserves the name under a new id and runs create (detached
// from ctx, see detached); a call for the same name meanwhile or after gets what await says. It returns the id.
func (n *names) once(ctx context.Context, key string, create func(ctx context.Context, id string) error) (string, error) {
	res, first := n.reserve(key, newID())
	if !first {
		return n.await(ctx, key, res)
	}
	err, delivered := detached(ctx, func(ctx context.Context) (err error) {
		defer func() { n.finish(key, res, err) }()
		// Nothing above a detached creation recovers a panic: this one must not end berthd.
		defer recoverCreation(Logger(ctx).With("id", res.id), "create "+n.kind+" "+res.id, &err)
		return create(ctx, res.id)
	})
	if err != nil {
		return "", err
	}
	if delivered {
		n.deliver(res)
	}
	return res.id, nil
}

// reserve returns the reservation of key and whether the caller made it (and must finish it). A caller that did not
// make it gets the existing one, already finished or not.
func (n *names) reserve(key, id string) (*reservation, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r, ok := n.byKey[key]; ok {
		return r, false
	}
	r := &reservation{id: id, done: make(chan struct{})}
	n.byKey[key] = r
	return r, true
}

// restore records a name that an existing object holds (at start-up).
func (n *names) restore(key, id string) {
	r := &reservation{id: id, done: make(chan struct{}), delivered: true}
	close(r.done)
	n.mu.Lock()
	n.byKey[key] = r
	n.mu.Unlock()
}

// finish ends a creation. On error the name is free again.
func (n *names) finish(key string, r *reservation, err error) {
	n.mu.Lock()
	r.err = err
	if err != nil && n.byKey[key] == r {
		delete(n.byKey, key)
	}
	n.mu.Unlock()
	close(r.done)
}

// release frees the name of a removed object.
func (n *names) release(key, id string) {
	n.mu.Lock()
	if r, ok := n.byKey[key]; ok && r.id == id {
		delete(n.byKey, key)
	}
	n.mu.Unlock()
}

// await waits for another call's reservation of the same name and says what this call returns: the first call's id
// when its result never reached its caller (a retry after a timeout), else an AlreadyExists error.
func (n *names) await(ctx context.Context, key string, r *reservation) (string, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if r.err != nil {
		return "", r.err
	}
	if r.delivered {
		return "", errdefs.AlreadyExists(n.kind+" name", key+" (reserved by "+r.id+")")
	}
	r.delivered = true
	return r.id, nil
}

// deliver marks that the first caller received its result.
func (n *names) deliver(r *reservation) {
	n.mu.Lock()
	r.delivered = true
	n.mu.Unlock()
}

// slowCallTimeout bounds a creation that runs on after its caller gave up.
const slowCallTimeout = 4 * time.Minute

// detached runs fn to completion even when ctx ends first (the kubelet timed out): fn gets a context that keeps
// ctx's values but not its deadline, bounded by slowCallTimeout. The caller gets fn's result, or ctx's error if
// ctx ended first; then delivered reports false and the result waits in the name reservation for a retry.
func detached(ctx context.Context, fn func(context.Context) error) (err error, delivered bool) {
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), slowCallTimeout)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- fn(work)
	}()
	select {
	case err := <-done:
		return err, true
	case <-ctx.Done():
		return ctx.Err(), false
	}
}

// recoverCreation, deferred in a creation that runs detached (no interceptor above it recovers a panic there), turns
// a panic into an error wrapping errdefs.ErrInternal in *err: the creation's undo runs, its name reservation is
// finished, the caller gets codes.Internal and berthd keeps serving. Defer it after the undo, so that it runs first.
func recoverCreation(log *slog.Logger, what string, err *error) {
	if r := recover(); r != nil {
		log.Error("panic in "+what, "panic", r, "stack", string(debug.Stack()))
		*err = fmt.Errorf("%s: %v: %w", what, r, errdefs.ErrInternal)
	}
}
