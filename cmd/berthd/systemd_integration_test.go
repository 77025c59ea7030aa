//go:build integration

package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestSIGHUPKeepsServing: a SIGHUP (a closed terminal, a `systemctl kill -s HUP`, a log rotator) must not end berthd.
// Go's default for an uncaught SIGHUP is to exit, and systemd counts death by SIGHUP as a clean stop, so
// Restart=on-failure would never bring berthd back.
func TestSIGHUPKeepsServing(t *testing.T) {
	d := newDaemon(t, "")
	d.start(t)
	rt, _ := d.clients(t)
	for range 2 {
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// An exit by signal takes effect at once; give it the time of a scheduler round or two. d.stop then checks that
	// berthd still ends cleanly on SIGTERM.
	time.Sleep(500 * time.Millisecond)
	if _, err := rt.Version(ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("Version after SIGHUP: %v", err)
	}
}

// TestSystemdNotify runs berthd as systemd runs a Type=notify unit with WatchdogSec=: NOTIFY_SOCKET names a datagram
// socket (here the test's), WATCHDOG_USEC the watchdog. berthd must say READY=1 once it answers, ping WATCHDOG=1
// at half the interval, frame a SIGHUP's reload with RELOADING=1 (and MONOTONIC_USEC, which systemd 253+ wants) and
// READY=1, and say STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	d := newDaemon(t, "")
	sock := filepath.Join(d.dir, "notify")
	mgr, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := mgr.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(timeout time.Duration) string {
		select {
		case m := <-msgs:
			return m
		case <-time.After(timeout):
			return ""
		}
	}
	d.env = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=600000"}
	d.start(t)
	rt, _ := d.clients(t)
	if m := next(10 * time.Second); m != "READY=1" {
		t.Fatalf("first message %q, want READY=1:\n%s", m, d.log)
	}
	if _, err := rt.Version(ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("Version after READY=1: %v", err)
	}
	for range 2 {
		if m := next(2 * time.Second); m != "WATCHDOG=1" {
			t.Fatalf("message %q, want a WATCHDOG=1 every 0.3s:\n%s", m, d.log)
		}
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	var reload []string
	for deadline := time.Now().Add(5 * time.Second); len(reload) < 2 && time.Now().Before(deadline); {
		if m := next(100 * time.Millisecond); m != "" && m != "WATCHDOG=1" {
			reload = append(reload, m)
		}
	}
	if len(reload) != 2 || !strings.HasPrefix(reload[0], "RELOADING=1\nMONOTONIC_USEC=") || reload[1] != "READY=1" {
		t.Fatalf("messages %q after SIGHUP, want RELOADING=1 with MONOTONIC_USEC, then READY=1:\n%s", reload, d.log)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	for m := next(10 * time.Second); m != "STOPPING=1"; m = next(10 * time.Second) {
		if m != "WATCHDOG=1" {
			t.Fatalf("message %q on SIGTERM, want STOPPING=1:\n%s", m, d.log)
		}
	}
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("berthd exited with %v after SIGTERM:\n%s", err, d.log)
	}
}
