#!/usr/bin/env bash
# Checks `make install` into a DESTDIR: the binaries, the default config, the systemd unit (ExecStart following
# PREFIX) and /etc/crictl.yaml land; a second run keeps a berth.toml and crictl.yaml the host already has. The last
# line is the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dest=$(mktemp -d /tmp/berth-install-check.XXXXXX)
trap 'rm -rf "$dest"' EXIT
fail() { echo "install-check: $*" >&2; exit 1; }
install() { make --no-print-directory -s install DESTDIR="$dest" PREFIX=/opt/berth-check >/dev/null; }

install
for f in opt/berth-check/bin/berthd opt/berth-check/bin/berth-monitor; do
  [ -x "$dest/$f" ] || fail "$f not installed"
done
cmp -s deploy/berth.toml "$dest/etc/berth/berth.toml" || fail "etc/berth/berth.toml is not deploy/berth.toml"
cmp -s deploy/crictl.yaml "$dest/etc/crictl.yaml" || fail "etc/crictl.yaml is not deploy/crictl.yaml"
unit=$dest/etc/systemd/system/berthd.service
[ -f "$unit" ] || fail "etc/systemd/system/berthd.service not installed"
grep -qx 'ExecStart=/opt/berth-check/bin/berthd' "$unit" || fail "the unit's ExecStart does not follow PREFIX: $(grep ^ExecStart= "$unit")"
[ "$(grep -vc '^ExecStart=' "$unit")" = "$(grep -vc '^ExecStart=' deploy/berthd.service)" ] || fail "the unit differs from deploy/berthd.service beyond ExecStart"

echo "runtime-endpoint: unix:///run/containerd/containerd.sock" >"$dest/etc/crictl.yaml"
echo 'log.level = "debug"' >"$dest/etc/berth/berth.toml"
install
grep -q containerd "$dest/etc/crictl.yaml" || fail "a second install replaced the host's crictl.yaml"
grep -q debug "$dest/etc/berth/berth.toml" || fail "a second install replaced the host's berth.toml"
[ -z "$(find "$dest" -name '.*.new')" ] || fail "temporary files left: $(find "$dest" -name '.*.new')"
echo "install-check: make install DESTDIR: binaries, berth.toml, crictl.yaml and berthd.service land; the host's berth.toml and crictl.yaml are kept"
