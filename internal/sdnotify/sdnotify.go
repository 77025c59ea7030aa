// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) for a unit of Type=notify: READY=1 once the
// service works, STOPPING=1 when it begins to stop, WATCHDOG=1 keep-alives when the unit has WatchdogSec=.
//
// It is the raw protocol, one datagram per message, rather than github.com/coreos/go-systemd's daemon package: that
// package reads NOTIFY_SOCKET on every call and can only unset it on the first, so a daemon that notifies more than
// once would leave it in the environment of every process it starts (berth-monitor, and through it runc helpers).
// New reads the variables once and removes them.
package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Messages berthd sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Reloading is RELOADING=1 with the MONOTONIC_USEC that systemd 253+ wants beside it (Type=notify-reload), so that
// systemctl reload waits for the READY=1 that ends the reload.
func Reloading() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for CLOCK_MONOTONIC
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}

// Notifier sends messages to the service manager. The zero Notifier (not started by one) sends nothing.
type Notifier struct {
	socket   string        // NOTIFY_SOCKET: a path, or "@name" for an abstract socket
	watchdog time.Duration // WATCHDOG_USEC meant for this process; 0: no watchdog
}

// FromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and unsets them, so that no child process takes
// systemd's messages for its own (with NotifyAccess=main systemd would drop them, with all it would believe them).
func FromEnv() (*Notifier, error) {
	socket, usec, pid := os.Getenv("NOTIFY_SOCKET"), os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(v)
	}
	return parse(socket, usec, pid, os.Getpid())
}

func parse(socket, usec, pid string, self int) (*Notifier, error) {
	n := &Notifier{}
	if socket != "" {
		// systemd 254+ may also pass vsock: addresses, for VMs; a service on the host gets a path.
		if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
			return nil, fmt.Errorf("NOTIFY_SOCKET %q: neither an absolute path nor an abstract socket (@name)", socket)
		}
		n.socket = socket
	}
	if usec == "" {
		return n, nil
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 {
		return nil, fmt.Errorf("WATCHDOG_USEC %q: not a positive number of microseconds", usec)
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return nil, fmt.Errorf("WATCHDOG_PID %q: not a pid", pid)
		}
		if p != self {
			return n, nil // the watchdog is another process's
		}
	}
	n.watchdog = time.Duration(us) * time.Microsecond
	return n, nil
}

// Enabled says whether a service manager listens.
func (n *Notifier) Enabled() bool { return n.socket != "" }

// WatchdogInterval is the unit's watchdog timeout, 0 when it has none.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Notify sends one message (newline-separated assignments); without a service manager it does nothing.
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	// "@name" is an abstract socket: Go's net package maps a leading @ to the NUL byte.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify %s: %w", n.socket, err)
	}
	return nil
}

// RunWatchdog sends WATCHDOG=1 half a watchdog interval after the last one, once check passes, until ctx ends. Each
// check gets an eighth of the interval; a failed one is retried after another sixteenth, so the service has the whole
// second half of the interval to answer once. If it does not, systemd kills it (WatchdogSignal, SIGABRT by default:
// Go prints every goroutine's stack) and restarts it. Without a watchdog it returns at once.
func (n *Notifier) RunWatchdog(ctx context.Context, check func(context.Context) error, log *slog.Logger) {
	every := n.WatchdogInterval() / 2
	if every <= 0 {
		return
	}
	wait := every
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, every/4)
		err := check(cctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("watchdog: self-check failed, keep-alive held back", "err", err, "watchdogSec", n.watchdog)
			wait = every / 8
		default:
			if err := n.Notify(Watchdog); err != nil {
				log.Warn("watchdog: keep-alive not sent", "err", err)
			}
			wait = every
		}
	}
}
