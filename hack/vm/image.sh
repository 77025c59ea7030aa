#!/usr/bin/env bash
# Builds a node VM image from Debian packages (mmdebstrap) once, and prints its directory: disk.img (raw ext4 root),
# vmlinuz, initrd.img, info.txt (kernel, systemd version). The directory is named by a hash of every input (node,
# suite, packages, mirror, this script, hack/vm/guest/*), so a build is skipped while they stay the same.
# Usage: hack/vm/image.sh NODE   (debian12 | debian11)
# Environment: BERTH_VM_CACHE (~/.cache/berth/vm), BERTH_VM_MIRROR (default: the host's apt sources)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

node=${1:?usage: $0 NODE}
case "$node" in
  debian12) suite=bookworm ;; # kernel 6.1, systemd 252
  debian11) suite=bullseye ;; # kernel 5.10, systemd 247
  *) vm_die "unknown node $node (debian12, debian11)" ;;
esac
packages=(
  systemd systemd-sysv udev linux-image-cloud-amd64 # boots as a node does: systemd PID 1, the distribution kernel
  iproute2 iptables kmod                            # CNI bridge and portmap plugins
  util-linux procps e2fsprogs                       # mount, nsenter, ipcmk (critest HostIpc), pgrep; debugfs
  apparmor sudo                                     # the AppArmor specs run where the kernel enables it; critest
                                                    # loads their profiles with sudo apparmor_parser
  bash curl                                         # hack/*.sh; testbed.sh probes the registry with curl
)

mirror=$(vm_mirror)
key=$( {
  echo "$node $suite $mirror"
  printf '%s\n' "${packages[@]}"
  cat "$0" "$here"/guest/boot.sh "$here"/guest/berth-vm.service "$here"/guest/customize.sh
} | sha256sum | cut -c1-16)
images=$(vm_cache)/images
dest=$images/$node-$key
mkdir -p "$images"
exec 9>"$images/$node.lock"
timeout 3600 flock 9 || vm_die "waited an hour for another build of $node"
if [ -f "$dest/disk.img" ]; then
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d "$images/.build-$node.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "vm: building the $node image ($suite) with mmdebstrap, log in $tmp/build.log" >&2
start=$SECONDS
# No Recommends (mmdebstrap's default), no docs; Valid-Until off because the mirror may be a dated snapshot.
if ! timeout 1800 mmdebstrap --variant=minbase --components=main --include="$(IFS=,; echo "${packages[*]}")" \
  --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Retries "3"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="\"$here/guest/customize.sh\" \"\$1\" \"$here/guest\"" \
  "$suite" "$tmp/rootfs" "$mirror" >"$tmp/build.log" 2>&1; then
  tail -30 "$tmp/build.log" >&2
  vm_die "mmdebstrap $suite failed"
fi
kernel=$(cd "$tmp/rootfs/boot" && ls vmlinuz-* | sort -V | tail -1)
kver=${kernel#vmlinuz-}
cp "$tmp/rootfs/boot/$kernel" "$tmp/vmlinuz"
cp "$tmp/rootfs/boot/initrd.img-$kver" "$tmp/initrd.img"
{
  echo "node=$node suite=$suite kernel=$kver"
  chroot "$tmp/rootfs" dpkg-query -W -f='${Package}=${Version}\n' systemd linux-image-cloud-amd64 apparmor
  echo "rootfs=$(du -sm "$tmp/rootfs" | cut -f1)MB"
} >"$tmp/info.txt"
timeout 600 mkfs.ext4 -q -L berth-root -d "$tmp/rootfs" "$tmp/disk.img" 4G >>"$tmp/build.log" 2>&1
rm -rf "$tmp/rootfs"
mv "$tmp" "$dest"
trap - EXIT
# Older builds of this node are dead weight (4 GB sparse each).
for old in "$images/$node"-*; do
  [ "$old" = "$dest" ] || rm -rf "$old"
done
echo "vm: built the $node image in $((SECONDS - start))s: $(head -1 "$dest/info.txt")" >&2
echo "$dest"
