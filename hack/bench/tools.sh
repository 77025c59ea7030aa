#!/usr/bin/env bash
# Builds the runtime berth is compared with, from the Go module proxy into the tools cache, once per version (as
# hack/tools.sh builds critest): containerd and its runc shim (static, CGO_ENABLED=0, as containerd's static release
# is) and runc (cgo + libseccomp, -tags seccomp, as runc's release is; without libpathrs, a Rust library Debian does
# not package). Prints the directory holding bin/containerd, bin/containerd-shim-runc-v2 and bin/runc.
# Usage: hack/bench/tools.sh [DIR]   (default: $BERTH_TOOLS or ~/.cache/berth/tools, subdir containerd-$VERSION)
set -euo pipefail
CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.3
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-${BERTH_TOOLS:-$HOME/.cache/berth/tools}/containerd-${CONTAINERD_VERSION#v}}
stamp="$CONTAINERD_VERSION $RUNC_VERSION"
[ "$(cat "$dir/.version" 2>/dev/null)" = "$stamp" ] && { echo "$dir"; exit 0; }
mkdir -p "$dir/bin"

# src MODULE@VERSION: a writable copy of the module, whose own go.sum pins its dependencies.
src() {
  local mod tmp
  mod=$(cd "$root" && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$mod" ] || { echo "bench tools: cannot download $1" >&2; return 1; }
  tmp=$(mktemp -d)
  cp -r "$mod/." "$tmp" && chmod -R u+w "$tmp"
  echo "$tmp"
}

echo "bench tools: building containerd $CONTAINERD_VERSION and runc $RUNC_VERSION (once)" >&2
s=$(src github.com/containerd/containerd/v2@$CONTAINERD_VERSION)
trap 'rm -rf "$s"' EXIT
pkg=github.com/containerd/containerd/v2
ld="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Package=$pkg"
(cd "$s" && CGO_ENABLED=0 go build -trimpath -tags 'urfave_cli_no_docs osusergo netgo static_build' -ldflags "$ld" \
   -o "$dir/bin/containerd" ./cmd/containerd &&
 CGO_ENABLED=0 go build -trimpath -tags 'urfave_cli_no_docs osusergo netgo static_build no_grpc' -ldflags "$ld" \
   -o "$dir/bin/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2)
rm -rf "$s"
s=$(src github.com/opencontainers/runc@$RUNC_VERSION)
(cd "$s" && CGO_ENABLED=1 go build -trimpath -tags 'seccomp urfave_cli_no_docs' \
   -ldflags "-s -w -X main.gitCommit=$RUNC_VERSION" -o "$dir/bin/runc" .)
echo "$stamp" >"$dir/.version"
echo "$dir"
