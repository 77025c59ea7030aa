#!/usr/bin/env bash
# Builds the test tools from the Go module proxy into a cache dir, once:
# critest and crictl (sigs.k8s.io/cri-tools), the CNI plugins (go.mod tool entries). All static (CGO_ENABLED=0,
# as their upstream releases are), so they also run on older nodes (hack/vm: Debian 11's glibc 2.31).
# Usage: hack/tools.sh [DIR]   (default: $BERTH_TOOLS or ~/.cache/berth/tools)
# With BERTH_PREBUILT=1 (a node VM, no Go toolchain) it builds nothing and checks that DIR holds the tools.
set -euo pipefail
CRI_TOOLS_VERSION=v1.37.0
export CGO_ENABLED=0
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${BERTH_TOOLS:-$HOME/.cache/berth/tools}}
if [ -n "${BERTH_PREBUILT:-}" ]; then
  for f in bin/critest bin/crictl cni/bridge cni/host-local cni/loopback cni/portmap; do
    [ -x "$dir/$f" ] || { echo "tools: BERTH_PREBUILT set but $dir/$f is missing" >&2; exit 1; }
  done
  echo "$dir"
  exit 0
fi
mkdir -p "$dir/bin" "$dir/cni"

build_cri_tools() {
  local src; src=$(mktemp -d)
  trap 'rm -rf "$src"' RETURN
  # critest is a test binary (cmd/critest has no main package), so it is built with go test -c
  # inside a copy of the module, whose own go.sum pins its dependencies.
  local mod; mod=$(cd "$root" && go mod download -json sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  cp -r "$mod/." "$src" && chmod -R u+w "$src"
  local ld="-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRI_TOOLS_VERSION#v}"
  (cd "$src" && go test -c -o "$dir/bin/critest.new" -ldflags "$ld" ./cmd/critest \
     && go build -o "$dir/bin/crictl.new" -ldflags "$ld" ./cmd/crictl)
  mv "$dir/bin/critest.new" "$dir/bin/critest"
  mv "$dir/bin/crictl.new" "$dir/bin/crictl"
  echo "$CRI_TOOLS_VERSION" > "$dir/bin/.cri-tools-version"
}

# static FILE: no ELF interpreter, which a dynamic executable names in its first page. A cache built before the
# tools were static (or by an older checkout sharing it) is rebuilt.
static() { [ -f "$1" ] && ! head -c 4096 "$1" | grep -qa 'ld-linux'; }

if [ "$(cat "$dir/bin/.cri-tools-version" 2>/dev/null)" != "$CRI_TOOLS_VERSION" ] || ! static "$dir/bin/critest"; then
  echo "tools: building critest and crictl $CRI_TOOLS_VERSION" >&2
  build_cri_tools
fi

plugins_version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/containernetworking/plugins)
if [ "$(cat "$dir/cni/.version" 2>/dev/null)" != "$plugins_version" ] || ! static "$dir/cni/bridge"; then
  echo "tools: building CNI plugins $plugins_version" >&2
  (cd "$root" && go build -o "$dir/cni/" \
     -ldflags "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$plugins_version" tool)
  echo "$plugins_version" > "$dir/cni/.version"
fi
echo "$dir"
