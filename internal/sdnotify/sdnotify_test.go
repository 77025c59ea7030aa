package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeManager is the service manager's end of NOTIFY_SOCKET: a unixgram socket that collects datagrams.
type fakeManager struct {
	addr string
	conn *net.UnixConn
}

func newFakeManager(t *testing.T, addr string) *fakeManager {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fakeManager{addr: addr, conn: conn}
}

// next returns the next message, or "" when none comes within d.
func (m *fakeManager) next(t *testing.T, d time.Duration) string {
	t.Helper()
	m.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	n, err := m.conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ""
		}
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		socket, usec, pid string
		enabled           bool
		watchdog          time.Duration
		err               string
	}{
		"no manager":                {},
		"path":                      {socket: "/run/systemd/notify", enabled: true},
		"abstract":                  {socket: "@/org/freedesktop/systemd1/notify/1", enabled: true},
		"relative":                  {socket: "notify", err: "neither an absolute path"},
		"vsock":                     {socket: "vsock:2:1234", err: "neither an absolute path"},
		"watchdog":                  {socket: "/n", usec: "30000000", pid: "42", enabled: true, watchdog: 30 * time.Second},
		"watchdog without pid":      {socket: "/n", usec: "1000", enabled: true, watchdog: time.Millisecond},
		"another process's":         {socket: "/n", usec: "1000", pid: "43", enabled: true},
		"watchdog without a socket": {usec: "1000"},
		"zero usec":                 {socket: "/n", usec: "0", err: "WATCHDOG_USEC"},
		"bad usec":                  {socket: "/n", usec: "10s", err: "WATCHDOG_USEC"},
		"bad pid":                   {socket: "/n", usec: "1000", pid: "x", err: "WATCHDOG_PID"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n, err := parse(tc.socket, tc.usec, tc.pid, 42)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Enabled() != tc.enabled || n.WatchdogInterval() != tc.watchdog {
				t.Errorf("enabled %v watchdog %v, want %v %v", n.Enabled(), n.WatchdogInterval(), tc.enabled, tc.watchdog)
			}
		})
	}
}

func TestFromEnvUnsets(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/x")
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if !n.Enabled() || n.WatchdogInterval() != 2*time.Second {
		t.Errorf("enabled %v watchdog %v", n.Enabled(), n.WatchdogInterval())
	}
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if val, ok := os.LookupEnv(v); ok {
			t.Errorf("%s=%s left for child processes", v, val)
		}
	}
}

func TestNotify(t *testing.T) {
	for name, addr := range map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify"),
		"abstract": fmt.Sprintf("@berth-sdnotify-test-%d", os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			m := newFakeManager(t, addr)
			n := &Notifier{socket: addr}
			for _, msg := range []string{Ready, Stopping} {
				if err := n.Notify(msg); err != nil {
					t.Fatal(err)
				}
				if got := m.next(t, time.Second); got != msg {
					t.Errorf("got %q, want %q", got, msg)
				}
			}
		})
	}
	if err := (&Notifier{}).Notify(Ready); err != nil {
		t.Errorf("Notify without a manager: %v", err)
	}
	gone := &Notifier{socket: filepath.Join(t.TempDir(), "none")}
	if err := gone.Notify(Ready); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("Notify to a missing socket: %v", err)
	}
}

func TestRunWatchdog(t *testing.T) {
	m := newFakeManager(t, filepath.Join(t.TempDir(), "notify"))
	n := &Notifier{socket: m.addr, watchdog: 100 * time.Millisecond}
	var healthy atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(ctx, func(context.Context) error {
			if !healthy.Load() {
				return errors.New("not answering")
			}
			return nil
		}, slog.New(slog.DiscardHandler))
	}()
	if got := m.next(t, 300*time.Millisecond); got != "" {
		t.Errorf("keep-alive %q while the self-check fails", got)
	}
	healthy.Store(true)
	for range 2 {
		if got := m.next(t, time.Second); got != Watchdog {
			t.Fatalf("got %q, want %q", got, Watchdog)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("RunWatchdog did not return when its context ended")
	}

	// A check that hangs gets half the interval, then the ping is skipped.
	hung := &Notifier{socket: m.addr, watchdog: 100 * time.Millisecond}
	ctx, cancel = context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	var deadlines atomic.Int32
	hung.RunWatchdog(ctx, func(c context.Context) error {
		<-c.Done()
		if _, ok := c.Deadline(); ok {
			deadlines.Add(1)
		}
		return c.Err()
	}, slog.New(slog.DiscardHandler))
	if got := m.next(t, 50*time.Millisecond); got != "" {
		t.Errorf("keep-alive %q from a hung self-check", got)
	}
	if deadlines.Load() == 0 {
		t.Error("the self-check had no deadline")
	}
	if (&Notifier{}).WatchdogInterval() != 0 {
		t.Error("a watchdog without a manager")
	}
}

// A failed check is retried soon, not half an interval later: one slow moment must not cost the service its life.
func TestRunWatchdogRetries(t *testing.T) {
	m := newFakeManager(t, filepath.Join(t.TempDir(), "notify"))
	interval := 400 * time.Millisecond
	n := &Notifier{socket: m.addr, watchdog: interval}
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.RunWatchdog(ctx, func(context.Context) error {
		if calls.Add(1) == 2 {
			return errors.New("slow moment")
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	if got := m.next(t, time.Second); got != Watchdog {
		t.Fatalf("got %q, want %q", got, Watchdog)
	}
	first := time.Now()
	if got := m.next(t, time.Second); got != Watchdog {
		t.Fatalf("got %q, want %q", got, Watchdog)
	}
	if gap := time.Since(first); gap >= interval {
		t.Errorf("keep-alives %v apart around a failed check; the watchdog interval is %v", gap, interval)
	}
	if c := calls.Load(); c != 3 {
		t.Errorf("%d checks, want 3 (pass, fail, retry)", c)
	}
}
