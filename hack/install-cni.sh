#!/usr/bin/env bash
# Installs the CNI plugins berth is tested with into BIN_DIR (only those missing there) and, when CONF_DIR holds no
# network config yet, a bridge network for this node. Usage: hack/install-cni.sh [BIN_DIR] [CONF_DIR]
set -euo pipefail
bin=${1:-/opt/cni/bin}; conf=${2:-/etc/cni/net.d}
tools=$("$(dirname "$0")"/tools.sh)
install -d "$bin" "$conf"
for p in "$tools"/cni/*; do
  name=$(basename "$p")
  [ -e "$bin/$name" ] && continue
  install -m 0755 "$p" "$bin/.$name.new" && mv -f "$bin/.$name.new" "$bin/$name"
  echo "installed CNI plugin $bin/$name"
done
if ! ls "$conf"/*.conflist "$conf"/*.conf "$conf"/*.json >/dev/null 2>&1; then
  install -m 0644 "$(dirname "$0")/../deploy/cni/10-berth.conflist" "$conf/10-berth.conflist"
  echo "installed $conf/10-berth.conflist"
fi
