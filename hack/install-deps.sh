#!/usr/bin/env bash
# Installs, idempotently, the Debian packages that building berth and running its test bed need,
# and extracts Debian's dynamically linked busybox (it conflicts with busybox-static, so it cannot be
# installed beside it) into the tools cache for the glibc test image base.
# Usage (root, Debian): hack/install-deps.sh   Quiet unless something fails.
set -euo pipefail

packages=(
  gcc libc6-dev make pkg-config libseccomp-dev # static cgo build of berth-monitor (libc.a, libseccomp.a)
  git ca-certificates curl             # go modules; testbed.sh probes the registry with curl
  busybox-static                       # static test image base; hack/cmd/mkimages reads /usr/bin/busybox
  iptables iproute2 kmod               # CNI bridge/portmap plugins (iptables, br_netfilter)
  procps util-linux                    # ps/pgrep/sysctl; critest runs ipcmk on the host (HostIpc specs)
  jq strace                            # hack/bench reads critest's benchmark JSON; hack/bench/profile.sh counts syscalls
  crun                                 # the second RuntimeClass handler of the tests (make critest-crun)
  mmdebstrap qemu-system-x86 e2fsprogs # hack/vm: node images from Debian packages, booted under qemu; mkfs.ext4 -d
                                       # and debugfs carry the payload in and the results out
)
tools=${BERTH_TOOLS:-$HOME/.cache/berth/tools}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

fail() { echo "install-deps: $*" >&2; cat "$log" >&2; exit 1; }

missing() {
  local installed p
  installed=$({ dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true; } | awk '$2 == "installed" {print $1}')
  for p in "${packages[@]}"; do
    grep -qxF "$p" <<<"$installed" || echo "$p"
  done
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -qq -y --no-install-recommends install "$@" >"$log" 2>&1
}

apt_update() { apt-get -qq update >"$log" 2>&1 || fail "apt-get update failed"; }

# Package lists are fetched only when something is missing and the lists are absent or stale.
mapfile -t todo < <(missing)
if [ ${#todo[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "install-deps: must run as root to install: ${todo[*]}" >&2; exit 1; }
  if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then apt_update; fi
  if ! apt_install "${todo[@]}"; then
    apt_update
    apt_install "${todo[@]}" || fail "apt-get install ${todo[*]} failed"
  fi
  mapfile -t todo < <(missing)
  [ ${#todo[@]} -eq 0 ] || fail "still missing after install: ${todo[*]}"
fi

# The dynamic busybox comes from the same version as the installed busybox-static.
version=$(dpkg-query -W -f='${Version}' busybox-static)
dest=$tools/debian-busybox
if [ "$(cat "$dest/.version" 2>/dev/null)" != "$version" ]; then
  work=$(mktemp -d)
  trap 'rm -f "$log"; rm -rf "$work"' EXIT
  chmod 755 "$work" # apt's download sandbox user must be able to write here
  if ! (cd "$work" && apt-get -qq download "busybox=$version" >"$log" 2>&1); then
    apt_update
    (cd "$work" && apt-get -qq download "busybox=$version" >"$log" 2>&1) || fail "apt-get download busybox=$version failed"
  fi
  dpkg-deb -x "$work"/busybox_*.deb "$work/root" >"$log" 2>&1 || fail "dpkg-deb -x busybox failed"
  mkdir -p "$dest/bin"
  install -m 0755 "$work/root/bin/busybox" "$dest/bin/busybox.new"
  mv "$dest/bin/busybox.new" "$dest/bin/busybox"
  echo "$version" >"$dest/.version"
fi
