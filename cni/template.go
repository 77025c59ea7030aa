package cni

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/berthcri/berth/cni/conftemplate"
	"github.com/berthcri/berth/internal/atomicfile"
	"github.com/berthcri/berth/internal/errdefs"
)

// TemplateFile is the network config that the conf template (cni.conf_template) renders into the conf dir. It sorts
// before the bridge the installer ships (10-berth.conflist; '-' < '.'), so the rendered one is the pod network.
const TemplateFile = "10-berth-net.conflist"

// ParseTemplate reads and parses a conf template (conftemplate: Go template syntax over conftemplate.Data), and
// renders it once for an example CIDR, so that a template that cannot make a network config stops start-up.
func ParseTemplate(path string) (*conftemplate.Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cni.conf_template: %w", err)
	}
	t, err := conftemplate.Parse(filepath.Base(path), string(data))
	if err == nil {
		_, err = renderTemplate(t, []string{"10.0.0.0/24"})
	}
	if err != nil {
		return nil, fmt.Errorf("cni.conf_template %s: %w", path, err)
	}
	return t, nil
}

// templateData builds the template's data from the kubelet's CIDRs, which must parse.
func templateData(cidrs []string) (conftemplate.Data, error) {
	if len(cidrs) == 0 {
		return conftemplate.Data{}, errdefs.InvalidArgument("pod cidr", "none given")
	}
	d := conftemplate.Data{PodCIDR: cidrs[0], PodCIDRRanges: cidrs}
	var v4, v6 bool
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return conftemplate.Data{}, errdefs.InvalidArgument("pod cidr", "%q: %v", c, err)
		}
		v4, v6 = v4 || p.Addr().Is4(), v6 || !p.Addr().Is4()
	}
	if v4 {
		d.Routes = append(d.Routes, "0.0.0.0/0")
	}
	if v6 {
		d.Routes = append(d.Routes, "::/0")
	}
	return d, nil
}

// renderTemplate renders t for cidrs and checks that the result is a network config libcni loads, so that a
// template that renders garbage never replaces a working network.
func renderTemplate(t *conftemplate.Template, cidrs []string) ([]byte, error) {
	d, err := templateData(cidrs)
	if err != nil {
		return nil, err
	}
	out, err := t.Execute(d)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrFailedPrecondition)
	}
	list, err := libcni.NetworkConfFromBytes(out)
	if err == nil && len(list.Plugins) == 0 {
		err = fmt.Errorf("no plugins")
	}
	if err != nil {
		return nil, fmt.Errorf("rendered for %s, not a network config list: %v: %w",
			strings.Join(cidrs, ","), err, errdefs.ErrFailedPrecondition)
	}
	return out, nil
}

// SetPodCIDRs renders the conf template for the node's pod CIDRs into the conf dir (TemplateFile), atomically, and
// reloads the network config at once rather than at the watcher's next event. Without a template it does nothing:
// the network config is the operator's. Rewriting the same content is skipped.
func (n *Network) SetPodCIDRs(ctx context.Context, cidrs []string) error {
	if n.template == nil || len(cidrs) == 0 {
		return nil
	}
	data, err := renderTemplate(n.template, cidrs)
	if err != nil {
		return fmt.Errorf("cni.conf_template: %w", err)
	}
	path := filepath.Join(n.watch.confDir, TemplateFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(n.watch.confDir, 0o755); err != nil {
		return fmt.Errorf("cni conf dir: %w", err)
	}
	// atomicfile's temporary name (.tmp-NAME-RANDOM) has no CNI extension: libcni never loads it half written, and the
	// watcher and the kubelet see the old file or the new one, even after a crash.
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	n.log.InfoContext(ctx, "pod network config written from the conf template", "file", path, "podCIDRs", cidrs)
	n.watch.reload()
	return nil
}
