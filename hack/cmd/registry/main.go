// Command registry serves an OCI/Docker v2 registry on a loopback address for the test bed.
// Blobs live on disk (-dir) so big benchmark images do not sit in memory; manifests are served from
// memory and recorded in the same dir (manifests.go), so a restarted registry, or one started on a
// copy of the dir (hack/vm carries it into node VMs), serves every image pushed before.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "loopback address to listen on")
	dir := flag.String("dir", "", "directory holding the blobs and the manifest index (required)")
	verbose := flag.Bool("v", false, "log every request")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *dir, *verbose); err != nil {
		slog.Error("registry", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, dir string, verbose bool) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	if err := checkLoopback(addr); err != nil {
		return err
	}
	h, err := newDiskBlobs(dir)
	if err != nil {
		return err
	}
	reqLog := log.New(io.Discard, "", 0)
	if verbose {
		reqLog = log.New(os.Stderr, "registry: ", log.LstdFlags)
	}
	store, err := newManifestStore(dir, h, registry.New(registry.Logger(reqLog), registry.WithBlobHandler(h)))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           store,
		ReadHeaderTimeout: 10 * time.Second,
	}
	slog.Info("registry listening", "addr", ln.Addr().String(), "dir", dir)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// checkLoopback refuses anything but a literal loopback IP: the test bed must never be reachable
// from, or resolve names on, another machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: host must be a loopback IP such as 127.0.0.1", addr)
	}
	return nil
}
