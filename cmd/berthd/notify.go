package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berthcri/berth/internal/sdnotify"
)

// readyTimeout bounds the wait for berthd's first answer on its own socket; recovery is already done by then.
const readyTimeout = 30 * time.Second

// notifyReady tells systemd (Type=notify) that berthd serves, once a CRI call over its own socket is answered, as the
// kubelet's would be, and then keeps the unit's watchdog fed while such calls keep being answered. The returned stop
// ends the watchdog; it may be called more than once. Without a service manager it does nothing.
func notifyReady(n *sdnotify.Notifier, socket string, log *slog.Logger) (stop func(), err error) {
	if !n.Enabled() {
		return func() {}, nil
	}
	check := func(ctx context.Context) error { return selfCheck(ctx, socket) }
	if err := waitAnswer(check); err != nil {
		return nil, err
	}
	// Logged before it is sent, so that the journal has it before systemd's "Started".
	log.Info("answering on its socket: READY=1 to systemd", "watchdog", n.WatchdogInterval())
	if err := n.Notify(sdnotify.Ready); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(ctx, check, log)
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	}), nil
}

// waitAnswer retries check until it passes, at most readyTimeout.
func waitAnswer(check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer on berthd's own socket within %v: %w", readyTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
