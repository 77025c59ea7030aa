// Package deploy holds the files berth installs on a node. They are embedded so that the installer
// (cmd/berth-installer) carries exactly the bytes that are reviewed here.
package deploy

import "embed"

// Files: berth.toml (the defaults), crictl.yaml, berthd.service (systemd unit), berthd-supervise (start script for
// hosts without systemd), cni/10-berth.conflist (a bridge network for nodes that have none) and
// cni/10-berth.conflist.tmpl (the same bridge on the node's pod CIDR, berthd's cni.conf_template).
//
//go:embed berth.toml crictl.yaml berthd.service berthd-supervise cni/10-berth.conflist cni/10-berth.conflist.tmpl
var Files embed.FS
