// Command mkimages builds the images critest needs (the table in validationImages)
// reproducibly and pushes them to the test bed registry: fixed timestamps, sorted tar entries and
// a fixed build of the helper programs make the digests stable, so a re-run pushes nothing.
//
// Usage: go run ./hack/cmd/mkimages -registry 127.0.0.1:5000 [-bench]   (from the module root)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/berthcri/berth/hack/cmd/internal/tools"
)

type options struct {
	registry       string
	bench          bool
	busyboxStatic  string
	busyboxDynamic string
	moduleDir      string
}

func main() {
	var o options
	flag.StringVar(&o.registry, "registry", "127.0.0.1:5000", "loopback registry (host:port) to push to")
	flag.BoolVar(&o.bench, "bench", false, "also build and push the benchmark images bench/big and bench/small-files")
	flag.StringVar(&o.busyboxStatic, "busybox-static", "/usr/bin/busybox", "Debian busybox-static binary (static image base)")
	flag.StringVar(&o.busyboxDynamic, "busybox-dynamic", defaultDynamicBusybox(), "Debian's dynamically linked busybox (glibc image base), as extracted by hack/install-deps.sh")
	flag.StringVar(&o.moduleDir, "C", ".", "berth module root, where the helper programs under hack/images are built")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		slog.Error("mkimages", "err", err)
		os.Exit(1)
	}
}

func defaultDynamicBusybox() string {
	return filepath.Join(tools.Dir(), "debian-busybox", "bin", "busybox")
}

func run(ctx context.Context, o options) error {
	if err := checkLoopback(o.registry); err != nil {
		return err
	}
	static, err := loadBusybox(ctx, o.busyboxStatic, true)
	if err != nil {
		return err
	}
	dynamic, err := loadBusybox(ctx, o.busyboxDynamic, false)
	if err != nil {
		return err
	}
	libs, err := sharedLibs(o.busyboxDynamic)
	if err != nil {
		return err
	}
	b, err := newBases(static, dynamic, libs)
	if err != nil {
		return err
	}
	helpers, err := buildHelpers(ctx, o.moduleDir, "pause", "nginx", "nnp")
	if err != nil {
		return err
	}
	defs := validationImages(helpers)
	if o.bench {
		bench, err := benchImages(b)
		if err != nil {
			return err
		}
		defs = append(defs, bench...)
	}
	for _, d := range defs {
		if d.recipe != "" {
			ok, err := recipeUpToDate(ctx, os.Stdout, o.registry, d)
			if err != nil {
				return err
			}
			if ok {
				continue
			}
		}
		img, err := d.build(b)
		if err != nil {
			return err
		}
		if err := push(ctx, os.Stdout, o.registry, d, img); err != nil {
			return err
		}
	}
	return nil
}

// checkLoopback refuses a registry that is not a literal loopback IP: nothing may leave the machine.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("-registry %q: %w", hostport, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-registry %q: host must be a loopback IP such as 127.0.0.1", hostport)
	}
	return nil
}
