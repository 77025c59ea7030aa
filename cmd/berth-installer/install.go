package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/berthcri/berth/deploy"
	"github.com/berthcri/berth/internal/errdefs"
)

// Host paths the installer manages.
const (
	berthdPath    = "/usr/local/bin/berthd"
	monitorPath   = "/usr/local/bin/berth-monitor" // beside berthd, which finds its pod monitors there
	supervisePath = "/usr/local/bin/berthd-supervise"
	unitPath      = "/etc/systemd/system/berthd.service"
	configPath    = "/etc/berth/berth.toml"
	dropInPath    = "/etc/berth/berth.d/50-installer.toml"
	crictlPath    = "/etc/crictl.yaml"
	cniBinDir     = "/opt/cni/bin"
	cniConfDir    = "/etc/cni/net.d"
	networkPath   = cniConfDir + "/10-berth.conflist"
	// templatePath is the bridge on the node's pod CIDR (cni.conf_template), which berthd renders into
	// renderedPath when the kubelet hands the CIDR down; until then networkPath's fixed subnet serves.
	templatePath = "/etc/berth/cni/10-berth.conflist.tmpl"
	renderedPath = cniConfDir + "/10-berth-net.conflist" // cni.TemplateFile

	berthdUnit  = "berthd.service"
	kubeletUnit = "kubelet.service"
)

// How berthd runs on the host.
const (
	serviceSystemd = "systemd" // the unit berthd.service
	serviceScript  = "script"  // berthd-supervise, where there is no systemd
)

type installer struct {
	root           string // the host's root file system, e.g. /host
	payload        string // directory holding bin/berthd, bin/berth-monitor and cni/<plugin> (in the installer's image, or a release)
	endpoint       string // berth's CRI endpoint, for the kubelet
	kubelet        kubeletFiles
	switchRuntime  bool
	defaultNetwork bool
	node           string
	run            runner
	kube           func() (*kubeClient, error) // only switch mode and the uninstall of a switched node need the API
	log            *slog.Logger
}

// file is one file the installer puts on the host.
type file struct {
	path   string
	data   []byte
	mode   fs.FileMode
	policy replacePolicy
	// restart: berthd must restart to use the new content.
	restart bool
}

// install puts berth on the host and (re)starts berthd there; with switchRuntime it then points the kubelet at berth.
// Every step checks before it changes anything, so a second run changes nothing.
func (in *installer) install(ctx context.Context) error {
	service := serviceScript
	// systemd's own test for "booted with systemd".
	if fi, err := os.Stat((&host{root: in.root}).path("/run/systemd/system")); err == nil && fi.IsDir() {
		service = serviceSystemd
	}
	var kube *kubeClient
	if in.switchRuntime {
		if service != serviceSystemd {
			return errdefs.FailedPrecondition("--switch restarts the kubelet with systemctl, and this host does not run systemd")
		}
		if in.node == "" {
			return errdefs.InvalidArgument("--node", "empty: --switch needs the node's name (NODE_NAME)")
		}
		var err error
		if kube, err = in.kube(); err != nil {
			return err
		}
	}
	h, err := openHost(in.root, true)
	if err != nil {
		return err
	}
	defer h.close()

	settings, err := h.readKubelet(in.kubelet)
	if err != nil {
		return err
	}
	files, err := in.files(h, service, settings)
	if err != nil {
		return err
	}
	if h.j.Service != service {
		h.j.Service = service
		if err := h.save(); err != nil {
			return err
		}
	}
	for _, f := range files {
		var pending *bool
		if f.restart {
			pending = &h.j.PendingRestart
		}
		written, err := h.writeFile(&h.j.Files, f.path, f.data, f.mode, f.policy, pending)
		if err != nil {
			return err
		}
		if written {
			in.log.Info("installed", "file", f.path)
		}
	}
	// Before berthd starts: it resolves the group then.
	if err := in.ensureGroup(ctx, h); err != nil {
		return err
	}
	if err := in.startBerthd(ctx, h); err != nil {
		return err
	}
	if in.switchRuntime {
		return in.switchKubelet(ctx, h, kube)
	}
	return nil
}

// files lists what goes on the host: berthd and berth-monitor, the CNI plugins the host lacks, the config, crictl's config and the
// service unit or start script.
func (in *installer) files(h *host, service string, settings kubeletSettings) ([]file, error) {
	embedded := func(name string) []byte {
		data, err := deploy.Files.ReadFile(name)
		if err != nil {
			panic(err) // the embed directive lists it
		}
		return data
	}
	network, err := in.defaultNetworkOn(h)
	if err != nil {
		return nil, err
	}
	berthd, err := os.ReadFile(filepath.Join(in.payload, "bin", "berthd"))
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	mon, err := os.ReadFile(filepath.Join(in.payload, "bin", "berth-monitor"))
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	// The monitor goes first: a berthd restarted by this run starts its new pods' monitors from it. Running
	// monitors keep the old file (write-new + rename).
	files := []file{
		{path: monitorPath, data: mon, mode: 0o755, policy: backUp},
		{path: berthdPath, data: berthd, mode: 0o755, policy: backUp, restart: true},
		{path: configPath, data: embedded("berth.toml"), mode: 0o644, policy: keepHosts, restart: true},
		{path: dropInPath, data: dropIn(settings, network, in.log), mode: 0o644, policy: backUp, restart: true},
		{path: crictlPath, data: embedded("crictl.yaml"), mode: 0o644, policy: keepHosts},
	}
	if service == serviceSystemd {
		files = append(files, file{path: unitPath, data: embedded("berthd.service"), mode: 0o644, policy: backUp, restart: true})
	} else {
		files = append(files, file{path: supervisePath, data: embedded("berthd-supervise"), mode: 0o755, policy: backUp})
	}
	plugins, err := os.ReadDir(filepath.Join(in.payload, "cni"))
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	for _, p := range plugins {
		if !p.Type().IsRegular() || strings.HasPrefix(p.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(in.payload, "cni", p.Name()))
		if err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		// keepHosts: a plugin the host has is the host's (its network add-on's) to manage.
		files = append(files, file{path: path.Join(cniBinDir, p.Name()), data: data, mode: 0o755, policy: keepHosts})
	}
	if network {
		files = append(files, file{path: networkPath, data: embedded("cni/10-berth.conflist"), mode: 0o644, policy: keepHosts},
			file{path: templatePath, data: embedded("cni/10-berth.conflist.tmpl"), mode: 0o644, policy: backUp, restart: true})
	}
	return files, nil
}

// defaultNetworkOn says whether berth's bridge is the host's pod network: with --default-network, on a host that had
// no network config (or has berth's from an earlier run).
func (in *installer) defaultNetworkOn(h *host) (bool, error) {
	if !in.defaultNetwork {
		return false, nil
	}
	if slices.ContainsFunc(h.j.Files, func(r fileRecord) bool { return r.Path == networkPath }) {
		return true, nil
	}
	has, err := h.hasNetworkConfig()
	return !has, err
}

// dropIn is the installer's berth config drop-in: the settings that must agree with the kubelet's, and the conf
// template of berth's bridge when it is the pod network.
func dropIn(s kubeletSettings, network bool, log *slog.Logger) []byte {
	var b strings.Builder
	b.WriteString("# Written by berth-installer, removed by its uninstall. Put your own settings in other files here.\n")
	switch s.cgroupDriver {
	case "":
	case "systemd", "cgroupfs":
		fmt.Fprintf(&b, "# The kubelet's cgroupDriver.\ncgroup_driver = %s\n", strconv.Quote(s.cgroupDriver))
	default:
		log.Warn("ignoring the kubelet's unknown cgroupDriver", "value", s.cgroupDriver)
	}
	if s.sandboxImage != "" {
		fmt.Fprintf(&b, "# The kubelet's --pod-infra-container-image.\nsandbox_image = %s\n", strconv.Quote(s.sandboxImage))
	}
	if network {
		fmt.Fprintf(&b, "# --default-network: berth's bridge on the node's pod CIDR, from the kubelet.\n[cni]\nconf_template = %s\n",
			strconv.Quote(templatePath))
	}
	return []byte(b.String())
}

func (h *host) hasNetworkConfig() (bool, error) {
	entries, err := os.ReadDir(h.path(cniConfDir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("CNI config dir: %w", err)
	}
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			return true, nil
		}
	}
	return false, nil
}

// startBerthd starts berthd, or restarts it when a file it reads changed (in this run or in one that stopped before
// restarting it). The restart happens on the host, so it outlives this pod; running containers belong to the per-pod
// monitors and survive it.
func (in *installer) startBerthd(ctx context.Context, h *host) error {
	restart := h.j.PendingRestart
	var steps [][]string
	switch h.j.Service {
	case serviceSystemd:
		if restart {
			steps = append(steps, []string{"systemctl", "daemon-reload"})
		}
		action := "start"
		if restart {
			action = "restart"
		}
		steps = append(steps, []string{"systemctl", "enable", berthdUnit}, []string{"systemctl", action, berthdUnit})
	case serviceScript:
		action := "start"
		if restart {
			action = "restart"
		}
		steps = append(steps, []string{supervisePath, action})
	}
	for _, s := range steps {
		if err := in.run.Run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("start berthd: %w", err)
		}
	}
	in.log.Info("berthd running", "service", h.j.Service, "restarted", restart)
	h.j.PendingRestart = false
	return h.save()
}

// switchKubelet points the kubelet at berth, restarts it and labels the node. The kubelet's files are changed only on
// a cordoned and drained node. The restart is repeated until the label is set, so that an interrupted switch finishes.
func (in *installer) switchKubelet(ctx context.Context, h *host, kube *kubeClient) error {
	edits, err := h.pointKubeletAt(in.kubelet, in.endpoint)
	if err != nil {
		return err
	}
	if len(edits) > 0 {
		if err := checkDrained(ctx, kube, in.node); err != nil {
			return err
		}
		for _, e := range edits {
			fi, err := os.Stat(h.path(e.path))
			if err != nil {
				return err
			}
			if _, err := h.writeFile(&h.j.Kubelet, e.path, e.data, fi.Mode().Perm(), backUp, nil); err != nil {
				return err
			}
			in.log.Info("pointed the kubelet at berth", "file", e.path, "endpoint", in.endpoint)
		}
	}
	n, err := kube.node(ctx, in.node)
	if err != nil {
		return fmt.Errorf("node %s: %w", in.node, err)
	}
	if n.Metadata.Labels[runtimeLabel] == "installed" && len(edits) == 0 {
		return nil
	}
	if err := in.run.Run(ctx, "systemctl", "restart", kubeletUnit); err != nil {
		return fmt.Errorf("restart the kubelet: %w", err)
	}
	h.j.Labelled = true
	if err := h.save(); err != nil {
		return err
	}
	installed := "installed"
	if err := kube.setLabel(ctx, in.node, runtimeLabel, &installed); err != nil {
		return fmt.Errorf("label node %s: %w", in.node, err)
	}
	in.log.Info("switched the kubelet to berth", "node", in.node, "label", runtimeLabel+"=installed")
	return nil
}
