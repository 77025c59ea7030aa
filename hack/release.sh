#!/usr/bin/env bash
# make release: berth's release for linux/amd64 and linux/arm64 in _output/release/:
#   berth-VERSION-linux-ARCH.tar.gz   unpacks to berth-VERSION-linux-ARCH/, the directory berth-installer's
#                                     --payload reads: bin/{berthd,berth-monitor,berth-installer}, cni/<plugin>, and
#                                     berthd.service, berth.toml, crictl.yaml, SHA256SUMS (of all of them)
#   berth-VERSION-kubernetes.yaml     deploy/kubernetes (namespace, RBAC, the installer and switch DaemonSets) and
#   berth-VERSION-uninstall.yaml      the uninstaller, both pinned to the pushed index (REGISTRY/berth/installer:
#                                     VERSION@sha256:…)
#   SHA256SUMS                        of the tarballs and manifests
# then pushes the installer image index (hack/cmd/mkinstaller, both architectures) to BERTH_RELEASE_REGISTRY and
# checks what the registry serves. Every executable is checked with file(1) (ELF of its architecture, statically
# linked); the arm64 ones also run under qemu-aarch64-static.
# Environment: VERSION (the Makefile's), BERTH_RELEASE_REGISTRY (127.0.0.1:5000, the loopback test bed's; on
# 127.0.0.1 a registry of this run's own is started when none answers; others are reached over HTTPS with the
# credentials of ~/.docker/config.json), BERTH_RELEASE_OUT (_output/release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=${VERSION:?set VERSION, as make release does}
registry=${BERTH_RELEASE_REGISTRY:-127.0.0.1:5000}
out=${BERTH_RELEASE_OUT:-$root/_output/release}
arches=(amd64 arm64)
start=$SECONDS
fail() { echo "release: $*" >&2; exit 1; }

# Fixed times and owners: the same commit gives the same tarballs.
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
plugins_version=$(go list -m -f '{{.Version}}' github.com/containernetworking/plugins)
declare -A machine=([amd64]=x86-64 [arm64]="ARM aarch64")

rm -rf "$out"
mkdir -p "$out"
for arch in "${arches[@]}"; do
  name=berth-$version-linux-$arch
  dir=$out/$name
  mkdir -p "$dir/bin" "$dir/cni"
  make --no-print-directory -s build installer ARCH="$arch" BIN="$dir/bin" VERSION="$version" >/dev/null
  # The CNI plugins berth is tested with (go.mod's tool entries), static as their upstream releases are.
  CGO_ENABLED=0 GOARCH=$arch go build -trimpath -o "$dir/cni/" \
    -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$plugins_version" tool
  install -m 0644 deploy/berthd.service deploy/berth.toml deploy/crictl.yaml "$dir/"
  for f in "$dir"/bin/* "$dir"/cni/*; do
    desc=$(file -b "$f")
    case $desc in
      *"ELF 64-bit"*", ${machine[$arch]},"*"statically linked"*) ;;
      *) fail "$f is not a static ${machine[$arch]} executable: $desc" ;;
    esac
  done
  (cd "$dir" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | sed 's|^\./||' | xargs sha256sum >SHA256SUMS)
  tar -C "$out" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner -cf - "$name" | gzip -9n >"$out/$name.tar.gz"
done

# The arm64 build runs: its Go runtime starts and its C (berth-monitor's libseccomp and constructors) is linked.
arm=$out/berth-$version-linux-arm64/bin
if command -v qemu-aarch64-static >/dev/null; then
  got=$(qemu-aarch64-static "$arm/berthd" version)
  [ "$got" = "berth $version" ] || fail "arm64 berthd version under qemu: $got"
  got=$(qemu-aarch64-static "$arm/berth-installer" --version)
  [ "$got" = "berth-installer $version" ] || fail "arm64 berth-installer --version under qemu: $got"
  rc=0; got=$(qemu-aarch64-static "$arm/berth-monitor" 2>&1) || rc=$?
  [ "$rc" = 2 ] && [[ $got == usage:* ]] || fail "arm64 berth-monitor under qemu exited $rc: $got"
  ran="arm64 binaries ran under qemu"
else
  ran="qemu-aarch64-static absent: arm64 binaries not run"
fi

# The installer index, pushed and read back from the registry.
registry_pid=
work=$(mktemp -d)
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  [ -z "$registry_pid" ] || wait "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if [[ $registry == 127.0.0.1:* ]] && ! curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null; then
  go build -o "$work/registry" ./hack/cmd/registry
  "$work/registry" -addr "$registry" -dir "$work/blobs" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null && break; sleep 0.1; done
fi
image=$registry/berth/installer:$version
payloads=()
for arch in "${arches[@]}"; do payloads+=(-payload "$out/berth-$version-linux-$arch"); done
go run ./hack/cmd/mkinstaller -image "$image" "${payloads[@]}" >"$out/installer-image.txt" || fail "mkinstaller push failed"
check=$(go run ./hack/cmd/mkinstaller -check -image "$image" -platforms linux/amd64,linux/arm64) || fail "installer index check failed"

# The manifests, pinned to the index just pushed: the DaemonSets and the uninstaller run the same image.
ref=$(cat "$out/installer-image.txt")
placeholder=registry.example.com/berth/installer:latest
render() {
  local f first=1
  for f in "$@"; do
    [ -n "$first" ] || echo ---
    first=
    sed "s|image: $placeholder\$|image: $ref|" "deploy/kubernetes/$f"
  done
}
render namespace.yaml rbac.yaml daemonset.yaml switch.yaml >"$out/berth-$version-kubernetes.yaml"
render uninstall.yaml >"$out/berth-$version-uninstall.yaml"
images=$(cat "$out/berth-$version-kubernetes.yaml" "$out/berth-$version-uninstall.yaml" | sed -n 's/^ *image: //p' | sort | uniq -c)
[ "$(wc -l <<<"$images")" = 1 ] && [[ $images == *" $ref" ]] || fail "rendered manifests do not all run $ref: $images"

(cd "$out" && sha256sum ./*.tar.gz ./*.yaml | sed 's| \./| |' >SHA256SUMS)
for f in "$out"/*.tar.gz; do echo "release: $(basename "$f") $(($(stat -c %s "$f") / 1024 / 1024)) MiB"; done
echo "release: $check"
echo "release: $version for ${arches[*]}: static binaries checked, $ran ($((SECONDS - start))s)"
