#!/usr/bin/env bash
# Installs, idempotently, what `make release` needs beyond hack/install-deps.sh: Debian's cross compiler and
# arm64's libseccomp.a (a multiarch package: dpkg learns the arm64 architecture) for the static arm64 berth-monitor,
# file(1) to check what was built, and qemu-user-static to run the arm64 binaries once here.
# Usage (root, Debian amd64): hack/install-release-deps.sh   Quiet unless something fails.
set -euo pipefail

packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libseccomp-dev:arm64 file qemu-user-static)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() { echo "install-release-deps: $*" >&2; cat "$log" >&2; exit 1; }

[ "$(dpkg --print-architecture)" = amd64 ] || fail "releases are built on amd64 hosts (this is $(dpkg --print-architecture))"

missing() {
  local p
  for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || echo "$p"
  done
}

mapfile -t todo < <(missing)
[ ${#todo[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "install-release-deps: must run as root to install: ${todo[*]}" >&2; exit 1; }
# A new architecture has no package lists yet: they come with the update.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
apt-get -qq update >"$log" 2>&1 || fail "apt-get update failed"
DEBIAN_FRONTEND=noninteractive apt-get -qq -y --no-install-recommends install "${todo[@]}" >"$log" 2>&1 \
  || fail "apt-get install ${todo[*]} failed"
mapfile -t todo < <(missing)
[ ${#todo[@]} -eq 0 ] || fail "still missing after install: ${todo[*]}"
