// Package deploy holds the files berth installs on a node. They are embedded so that the installer
// (cmd/berth-installer) carries exactly the bytes that are reviewed here.
package deploy

import "embed"

// Files: berth.toml (the defaults), crictl.yaml, berthd.service (systemd unit), berthd-supervise (start script for
// hosts without systemd) and cni/10-berth.conflist (a bridge network for nodes that have none).
//
//go:embed berth.toml crictl.yaml berthd.service berthd-supervise cni/10-berth.conflist
var Files embed.FS
