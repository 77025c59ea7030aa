// Command mkinstaller builds berth's installer image (OCI, no Docker) and pushes it to a registry:
//
//	/usr/local/bin/berth-installer   the entry point (cmd/berth-installer, static)
//	/opt/berth/bin/berthd            the daemon (make build)
//	/opt/berth/bin/berth-monitor     the per-pod monitor (make build)
//	/opt/berth/cni/<plugin>          the CNI plugins (hack/tools.sh)
//
// The unit, start script and config files travel inside the installer (package deploy embeds them). Timestamps are
// fixed and entries sorted, so the same inputs give the same digest.
//
// Usage: go run ./hack/cmd/mkinstaller -image 127.0.0.1:5000/berth/installer:0.1.0 \
//
//	[-berthd bin/berthd] [-installer bin/berth-installer] [-cni ~/.cache/berth/tools/cni] [-insecure]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/berthcri/berth/hack/cmd/internal/tools"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	var o options
	var ref string
	var insecure bool
	flag.StringVar(&ref, "image", "", "where to push the image, e.g. 127.0.0.1:5000/berth/installer:0.1.0 (required)")
	flag.StringVar(&o.berthd, "berthd", "bin/berthd", "berthd binary (make build)")
	flag.StringVar(&o.monitor, "monitor", "bin/berth-monitor", "berth-monitor binary (make build)")
	flag.StringVar(&o.installer, "installer", "bin/berth-installer", "berth-installer binary, statically linked (make installer)")
	flag.StringVar(&o.cniDir, "cni", defaultCNIDir(), "directory of CNI plugin binaries (hack/tools.sh)")
	flag.BoolVar(&insecure, "insecure", false, "plain HTTP to the registry (always used for localhost, loopback and private addresses)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, ref, insecure, o); err != nil {
		slog.Error("mkinstaller", "err", err)
		os.Exit(1)
	}
}

func defaultCNIDir() string {
	return filepath.Join(tools.Dir(), "cni")
}

func run(ctx context.Context, ref string, insecure bool, o options) error {
	if ref == "" {
		return fmt.Errorf("-image is required")
	}
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	tag, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return fmt.Errorf("-image %q: %w", ref, err)
	}
	img, err := build(o)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", tag, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", tag, digest)
	return nil
}
