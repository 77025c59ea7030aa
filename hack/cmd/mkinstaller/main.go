// Command mkinstaller builds berth's installer image (OCI, no Docker) and pushes it to a registry as an image index
// with one image per architecture, so that each node of a mixed cluster pulls the one it runs. Each image holds:
//
//	/usr/local/bin/berth-installer   the entry point (cmd/berth-installer, static)
//	/opt/berth/bin/berthd            the daemon (make build)
//	/opt/berth/bin/berth-monitor     the per-pod monitor (make build)
//	/opt/berth/cni/<plugin>          the CNI plugins (hack/tools.sh)
//
// Every executable must be static and all of one image's of one architecture, which names its platform. The unit,
// start script and config files travel inside the installer (package deploy embeds them). Timestamps are fixed and
// entries sorted, so the same inputs give the same digest.
//
// Usage: go run ./hack/cmd/mkinstaller -image 127.0.0.1:5000/berth/installer:0.1.0 \
//
//	[-berthd bin/berthd] [-monitor bin/berth-monitor] [-installer bin/berth-installer] [-cni ~/.cache/berth/tools/cni]
//	[-insecure]                           one image, this build's binaries
//	-payload DIR [-payload DIR …]         one image per release directory (make release: _output/release/berth-V-linux-ARCH)
//	-check -platforms linux/amd64,linux/arm64
//	                                      build nothing: pull -image and check its platforms and binaries
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berthcri/berth/hack/cmd/internal/tools"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	var single payload
	var dirs []string
	var ref, platforms string
	var insecure, check bool
	flag.StringVar(&ref, "image", "", "where to push the image index, e.g. 127.0.0.1:5000/berth/installer:0.1.0 (required)")
	flag.StringVar(&single.berthd, "berthd", "bin/berthd", "berthd binary (make build)")
	flag.StringVar(&single.monitor, "monitor", "bin/berth-monitor", "berth-monitor binary (make build)")
	flag.StringVar(&single.installer, "installer", "bin/berth-installer", "berth-installer binary, statically linked (make installer)")
	flag.StringVar(&single.cniDir, "cni", defaultCNIDir(), "directory of CNI plugin binaries (hack/tools.sh)")
	flag.Func("payload", "a release directory (bin/, cni/) for one architecture; repeat for each (instead of -berthd, -monitor, -installer, -cni)", func(s string) error {
		dirs = append(dirs, s)
		return nil
	})
	flag.BoolVar(&check, "check", false, "build and push nothing: pull -image and check it has exactly -platforms, each with static binaries of its architecture")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "with -check: the platforms the index must have")
	flag.BoolVar(&insecure, "insecure", false, "plain HTTP to the registry (always used for localhost, loopback and private addresses)")
	flag.Parse()

	payloads := []payload{single}
	if len(dirs) > 0 {
		var conflict string
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "berthd" || f.Name == "monitor" || f.Name == "installer" || f.Name == "cni" {
				conflict = f.Name
			}
		})
		if conflict != "" {
			fmt.Fprintf(os.Stderr, "mkinstaller: -%s and -payload do not go together\n", conflict)
			os.Exit(2)
		}
		payloads = payloads[:0]
		for _, d := range dirs {
			payloads = append(payloads, payloadFrom(d))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	if check {
		err = checkRemote(ctx, ref, insecure, strings.Split(platforms, ","))
	} else {
		err = run(ctx, ref, insecure, payloads)
	}
	if err != nil {
		slog.Error("mkinstaller", "err", err)
		os.Exit(1)
	}
}

func defaultCNIDir() string {
	return filepath.Join(tools.Dir(), "cni")
}

func parseRef(ref string, insecure bool) (name.Reference, error) {
	if ref == "" {
		return nil, fmt.Errorf("-image is required")
	}
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("-image %q: %w", ref, err)
	}
	return r, nil
}

func run(ctx context.Context, ref string, insecure bool, payloads []payload) error {
	tag, err := parseRef(ref, insecure)
	if err != nil {
		return err
	}
	idx, err := buildIndex(payloads)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", tag, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", tag, digest)
	return nil
}

// checkRemote verifies the index at ref as the registry serves it.
func checkRemote(ctx context.Context, ref string, insecure bool, platforms []string) error {
	r, err := parseRef(ref, insecure)
	if err != nil {
		return err
	}
	idx, err := remote.Index(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return fmt.Errorf("pull %s: %w", r, err)
	}
	if err := verify(idx, platforms); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s: platforms %s, every executable static and of its platform's architecture\n", r, digest, strings.Join(platforms, " "))
	return nil
}
