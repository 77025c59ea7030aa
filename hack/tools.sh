#!/usr/bin/env bash
# Builds the test tools from the Go module proxy into a cache dir, once:
# critest and crictl (sigs.k8s.io/cri-tools), the CNI plugins (go.mod tool entries).
# Usage: hack/tools.sh [DIR]   (default: $BERTH_TOOLS or ~/.cache/berth/tools)
set -euo pipefail
CRI_TOOLS_VERSION=v1.37.0
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${BERTH_TOOLS:-$HOME/.cache/berth/tools}}
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

if [ "$(cat "$dir/bin/.cri-tools-version" 2>/dev/null)" != "$CRI_TOOLS_VERSION" ]; then
  echo "tools: building critest and crictl $CRI_TOOLS_VERSION" >&2
  build_cri_tools
fi

plugins_version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/containernetworking/plugins)
if [ "$(cat "$dir/cni/.version" 2>/dev/null)" != "$plugins_version" ]; then
  echo "tools: building CNI plugins $plugins_version" >&2
  (cd "$root" && go build -o "$dir/cni/" \
     -ldflags "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$plugins_version" tool)
  echo "$plugins_version" > "$dir/cni/.version"
fi
echo "$dir"
