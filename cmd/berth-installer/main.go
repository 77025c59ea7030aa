// Command berth-installer installs berth on a Kubernetes node from a privileged DaemonSet pod that has the host's root
// file system at /host (deploy/kubernetes), or on the host itself with --host-root /.
//
//	berth-installer install [flags]     copy berthd, the CNI plugins the host lacks, config, unit or start script;
//	                                    (re)start berthd; with --switch point the kubelet at berth (drained node only)
//	berth-installer uninstall [flags]   undo all of it from the installer's journal and backups
//	berth-installer --version
//
// Both are idempotent: a second run changes nothing. With --sleep the installer then waits for SIGTERM, so that
// its DaemonSet pod stays Ready.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/berthcri/berth/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = "usage: berth-installer install|uninstall [flags] | --version"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "berth-installer %s\n", version.Version)
		return 0
	case "install", "uninstall":
	default:
		fmt.Fprintf(stderr, "berth-installer: unknown command %q\n%s\n", args[0], usage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("berth-installer "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := installer{kubelet: defaultKubeletFiles, kube: inClusterClient}
	var sleep bool
	fs.StringVar(&in.root, "host-root", "/host", "the host's root file system")
	fs.StringVar(&in.payload, "payload", "/opt/berth", "directory holding bin/berthd, bin/berth-monitor and cni/<plugins> to install (an unpacked release tarball)")
	fs.BoolVar(&in.switchRuntime, "switch", false, "point the kubelet at berth (the node must be cordoned and drained), restart it, label the node "+runtimeLabel+"=installed")
	fs.BoolVar(&in.defaultNetwork, "default-network", false, "install a bridge network ("+networkPath+") when "+cniConfDir+" has no network config, and its template on the node's pod CIDR ("+templatePath+", cni.conf_template)")
	fs.StringVar(&in.node, "node", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&in.endpoint, "endpoint", "unix:///run/berth/berth.sock", "berth's CRI endpoint, for the kubelet")
	fs.StringVar(&in.kubelet.config, "kubelet-config", in.kubelet.config, "the kubelet's KubeletConfiguration file (host path)")
	fs.BoolVar(&sleep, "sleep", false, "after success, wait for SIGTERM (keeps a DaemonSet pod Ready)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "berth-installer: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for _, p := range []struct{ flag, value string }{{"--host-root", in.root}, {"--payload", in.payload}} {
		if !filepath.IsAbs(p.value) {
			fmt.Fprintf(stderr, "berth-installer: %s %q: not an absolute path\n", p.flag, p.value)
			return 2
		}
	}
	in.log = slog.New(slog.NewTextHandler(stderr, nil))
	in.run = hostRunner{root: in.root}

	var err error
	if cmd == "install" {
		err = in.install(ctx)
	} else {
		err = in.uninstall(ctx)
	}
	if err != nil {
		in.log.Error(cmd+" failed", "err", err)
		return 1
	}
	in.log.Info(cmd+" done", "version", version.Version)
	if sleep {
		<-ctx.Done()
	}
	return 0
}
