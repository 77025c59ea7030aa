package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/cni/conftemplate"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/store"
	"github.com/berthcri/berth/sandbox"
)

// Options configure a Network.
type Options struct {
	ConfDir string   // the first network config in it (lexical order) is the pod network
	BinDirs []string // where the plugins are
	// StateDir holds the attachment records and libcni's result cache. It must survive a reboot as IPAM leases
	// do (host-local keeps them in /var/lib/cni): after one, GC releases the leases of the pods that are gone.
	StateDir     string
	SetupTimeout time.Duration // bound of one ADD or DEL; 0: two minutes
	Logger       *slog.Logger  // nil: slog.Default()
	// ConfTemplate is a template file (conftemplate: Go template syntax over the pod CIDRs) rendered into ConfDir
	// when the kubelet hands down the node's pod CIDRs (SetPodCIDRs); "" for none.
	ConfTemplate string
	// Observe is told of every ADD and DEL: op "ADD" or "DEL", the network's name, its main (first) plugin's type,
	// how long it took and its error (metrics); nil for none.
	Observe func(op, network, plugin string, took time.Duration, err error)

	exec invoke.Exec // runs the plugins; tests set a fake
}

// Network attaches pods to the pod network (sandbox.Network). Calls for different pods run in parallel and
// share no lock: a slow plugin holds up only its own pod, for at most the setup timeout.
type Network struct {
	watch       *watcher
	cni         *libcni.CNIConfig
	attachments *store.Store[attachment]
	timeout     time.Duration
	log         *slog.Logger
	observe     func(op, network, plugin string, took time.Duration, err error)
	template    *conftemplate.Template // nil without a conf template
}

var _ sandbox.Network = (*Network)(nil)

// attachment is what a DEL of a pod needs, recorded before its ADD: the network config as it was then (the
// conf dir may have changed since) and the plugins' arguments.
type attachment struct {
	Network        json.RawMessage `json:"network"` // the conflist, every plugin inlined
	ContainerID    string          `json:"containerID"`
	NetNS          string          `json:"netns"`
	IfName         string          `json:"ifName"`
	Args           [][2]string     `json:"args,omitempty"`
	CapabilityArgs map[string]any  `json:"capabilityArgs,omitempty"`
}

const attachmentVersion = 1

// New loads the network config and starts watching for changes. Close stops it.
func New(o Options) (*Network, error) {
	if o.StateDir == "" {
		return nil, errdefs.InvalidArgument("cni state dir", "must be set")
	}
	n := &Network{timeout: o.SetupTimeout, log: o.Logger, observe: o.Observe}
	if n.observe == nil {
		n.observe = func(string, string, string, time.Duration, error) {}
	}
	if n.timeout == 0 {
		n.timeout = 2 * time.Minute
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	exec := o.exec
	if exec == nil {
		// An explicit exec: libcni sets its default lazily, a data race when pods are set up in parallel.
		exec = &pluginExec{log: n.log}
	}
	n.cni = libcni.NewCNIConfigWithCacheDir(o.BinDirs, filepath.Join(o.StateDir, "cache"), exec)
	var err error
	if o.ConfTemplate != "" {
		if n.template, err = ParseTemplate(o.ConfTemplate); err != nil {
			return nil, err
		}
	}
	if n.attachments, err = store.Open[attachment](filepath.Join(o.StateDir, "attachments"), "network attachment", attachmentVersion); err != nil {
		return nil, err
	}
	if n.watch, err = newWatcher(o.ConfDir, o.BinDirs, n.log); err != nil {
		return nil, fmt.Errorf("watch network config: %w", err)
	}
	return n, nil
}

// Close stops watching the network config. It is idempotent.
func (n *Network) Close() { n.watch.close() }

// Ready returns nil when a usable network config is loaded, else why not, for the NetworkReady condition.
func (n *Network) Ready() error {
	_, err := n.watch.current()
	return err
}

// Setup adds the pod to the network (CNI ADD of interface eth0 in the pod's network namespace) and returns its IPs.
func (n *Network) Setup(ctx context.Context, p *sandbox.Pod) (*sandbox.NetworkStatus, error) {
	return n.setup(ctx, podOf(p))
}

// Teardown deletes the pod from the network it was added to, also after a failed or timed-out ADD.
func (n *Network) Teardown(ctx context.Context, p *sandbox.Pod) error {
	return n.teardown(ctx, p.ID())
}

func (n *Network) setup(ctx context.Context, p pod) (*sandbox.NetworkStatus, error) {
	conf, err := n.watch.current()
	if err != nil {
		return nil, fmt.Errorf("pod network not ready: %w: %w", err, errdefs.ErrUnavailable)
	}
	rt, err := runtimeConf(p)
	if err != nil {
		return nil, err
	}
	list, err := inlined(conf.List)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", conf.List.Name, err)
	}
	att := attachment{Network: list, ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: rt.IfName, Args: rt.Args,
		CapabilityArgs: rt.CapabilityArgs}
	if err := n.attachments.Create(p.ID, att); err != nil {
		return nil, fmt.Errorf("record network attachment: %w", err)
	}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	res, err := n.cni.AddNetworkList(actx, conf.List, rt)
	n.observe("ADD", conf.List.Name, mainPlugin(conf.List), time.Since(start), err)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s (cni.setup_timeout): %w", n.timeout, err)
		}
		return nil, fmt.Errorf("add pod to network %s (%s): %w", conf.List.Name, filepath.Base(conf.File), err)
	}
	ips, err := podIPs(res)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", conf.List.Name, err)
	}
	if len(ips) == 0 {
		n.log.Warn("pod network gave the pod no IP", "pod", p.ID, "network", conf.List.Name)
	}
	n.log.Debug("pod network set up", "pod", p.ID, "network", conf.List.Name, "ips", ips, "took", time.Since(start))
	return &sandbox.NetworkStatus{IPs: ips}, nil
}

func (n *Network) teardown(ctx context.Context, id string) error {
	att, ok := n.attachments.Get(id)
	if !ok { // never added, or deleted already
		return nil
	}
	list, err := libcni.NetworkConfFromBytes(att.Network)
	if err != nil {
		return fmt.Errorf("recorded network of pod %s: %w", id, err)
	}
	rt := &libcni.RuntimeConf{ContainerID: att.ContainerID, NetNS: att.NetNS, IfName: att.IfName, Args: att.Args,
		CapabilityArgs: att.CapabilityArgs}
	if !isNetNS(rt.NetNS) {
		// Gone (a reboot) or never made: plugins release what they hold outside it without entering it.
		rt.NetNS = ""
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	err = n.cni.DelNetworkList(dctx, list, rt)
	n.observe("DEL", list.Name, mainPlugin(list), time.Since(start), err)
	if err != nil {
		if dctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s (cni.setup_timeout): %w", n.timeout, err)
		}
		return fmt.Errorf("delete pod from network %s: %w", list.Name, err)
	}
	if err := n.attachments.Delete(id); err != nil {
		return err
	}
	n.log.Debug("pod network torn down", "pod", id, "network", list.Name, "took", time.Since(start))
	return nil
}

// GC deletes the attachments of every pod not in live, then lets the current network's plugins release what
// they hold for pods not in live (CNI GC, spec 1.1.0 and later). It must run before any Setup: a pod set up
// meanwhile would count as gone.
func (n *Network) GC(ctx context.Context, live []string) error {
	var errs []error
	for _, att := range n.attachments.List() {
		if slices.Contains(live, att.ContainerID) {
			continue
		}
		n.log.Info("deleting the network attachment of a pod that is gone", "pod", att.ContainerID)
		if err := n.teardown(ctx, att.ContainerID); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", att.ContainerID, err))
		}
	}
	if conf, err := n.watch.current(); err == nil {
		valid := make([]types.GCAttachment, 0, len(live))
		for _, id := range live {
			valid = append(valid, types.GCAttachment{ContainerID: id, IfName: ifName})
		}
		gctx, cancel := context.WithTimeout(ctx, n.timeout)
		defer cancel()
		if err := n.cni.GCNetworkList(gctx, conf.List, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", conf.List.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network gc: %w", err)
	}
	return nil
}

// inlined returns list as one conflist document, with the plugins libcni loaded from files beside it.
func inlined(list *libcni.NetworkConfigList) (json.RawMessage, error) {
	var doc map[string]any
	if err := json.Unmarshal(list.Bytes, &doc); err != nil {
		return nil, err
	}
	plugins := make([]json.RawMessage, len(list.Plugins))
	for i, p := range list.Plugins {
		plugins[i] = p.Bytes
	}
	doc["plugins"] = plugins
	doc["loadOnlyInlinedPlugins"] = true
	return json.Marshal(doc)
}

// mainPlugin is the type of the list's first plugin, the one that makes the interface (bridge, ptp, calico…);
// the ones after it (portmap, bandwidth, tuning) only adjust it.
func mainPlugin(list *libcni.NetworkConfigList) string {
	if len(list.Plugins) == 0 || list.Plugins[0].Network == nil {
		return ""
	}
	return list.Plugins[0].Network.Type
}

// isNetNS says whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	return path != "" && unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
