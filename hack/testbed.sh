#!/usr/bin/env bash
# The offline test bed: a loopback registry holding every image critest needs (hack/cmd/registry,
# hack/cmd/mkimages), and an /etc/hosts safety net so that a registry host that a runtime fails to
# map resolves to 127.0.0.1 instead of sending a DNS query off the machine.
#
# Usage: hack/testbed.sh start [mkimages flags, e.g. -bench]  build, start (or reuse) the registry, push the images
#        hack/testbed.sh stop                                  stop the registry, remove the /etc/hosts block
#        hack/testbed.sh env                                   print shell exports describing the test bed
#        hack/testbed.sh mirrors-toml                          print the berth config drop-in mapping the hosts
# Environment: BERTH_REGISTRY_PORT (5000), BERTH_TESTBED_DIR (/tmp/berth-testbed),
#              BERTH_TOOLS (~/.cache/berth/tools; hack/install-deps.sh puts Debian's dynamic busybox there)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${BERTH_TOOLS:-$HOME/.cache/berth/tools}
dir=${BERTH_TESTBED_DIR:-/tmp/berth-testbed}
port=${BERTH_REGISTRY_PORT:-5000}
addr=127.0.0.1:$port
pidfile=$dir/registry.pid
registry_bin=$tools/bin/berth-registry
mkimages_bin=$tools/bin/berth-mkimages
dynamic_busybox=$tools/debian-busybox/bin/busybox

# Hosts whose images critest pulls (mapped by the runtime), plus Docker Hub and quay.io aliases,
# which only the /etc/hosts safety net covers.
mirrored_hosts=(registry.k8s.io k8s.gcr.io gcr.io public.ecr.aws docker.io)
safety_net_hosts=("${mirrored_hosts[@]}" registry-1.docker.io index.docker.io quay.io)
hosts_begin='# berth-testbed begin'
hosts_end='# berth-testbed end'

die() { echo "testbed: $*" >&2; exit 1; }

# registry_pid prints the pid of the registry started from our pid file, if it still runs.
registry_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^$registry_bin " || return 1
  echo "$pid"
}

mirrors_toml() {
  local h
  for h in "${mirrored_hosts[@]}"; do
    printf '[registry.hosts."%s"]\nmirrors = ["http://%s"]\nmirrors_only = true\n\n' "$h" "$addr"
  done
}

remove_hosts_block() {
  grep -qxF "$hosts_begin" /etc/hosts || return 0
  local tmp; tmp=$(mktemp)
  sed "/^$hosts_begin\$/,/^$hosts_end\$/d" /etc/hosts >"$tmp"
  cat "$tmp" >/etc/hosts # rewrite in place: /etc/hosts may be a bind mount
  rm -f "$tmp"
}

add_hosts_block() {
  remove_hosts_block
  { echo "$hosts_begin"; printf '127.0.0.1 %s\n' "${safety_net_hosts[@]}"; echo "$hosts_end"; } >>/etc/hosts
}

start() {
  [ -w /etc/hosts ] || die "must run as root (edits /etc/hosts)"
  [ -x "$dynamic_busybox" ] || die "$dynamic_busybox missing: run hack/install-deps.sh"
  mkdir -p "$dir" "$tools/bin"
  (cd "$root" && go build -o "$registry_bin" ./hack/cmd/registry && go build -o "$mkimages_bin" ./hack/cmd/mkimages) \
    || die "build failed"

  local pid
  if ! pid=$(registry_pid); then
    setsid "$registry_bin" -addr "$addr" -dir "$dir/blobs" >>"$dir/registry.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
  fi
  local i
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || die "registry exited; see $dir/registry.log: $(tail -n 3 "$dir/registry.log")"
    curl -sf -o /dev/null "http://$addr/v2/" && break
    [ "$i" -lt 100 ] || die "registry did not answer on http://$addr/v2/"
    sleep 0.1
  done
  # Something else may hold the port: then our registry has exited by now.
  kill -0 "$pid" 2>/dev/null || die "registry exited; see $dir/registry.log: $(tail -n 3 "$dir/registry.log")"

  if ! (cd "$root" && "$mkimages_bin" -registry "$addr" -busybox-dynamic "$dynamic_busybox" "$@") >"$dir/images.txt" 2>"$dir/mkimages.log"; then
    cat "$dir/mkimages.log" >&2
    die "mkimages failed"
  fi
  add_hosts_block
  mirrors_toml >"$dir/registry-mirrors.toml"
  echo "testbed: registry http://$addr (pid $pid): $(wc -l <"$dir/images.txt") tags," \
    "$(grep -cv ' unchanged$' "$dir/images.txt" || true) pushed or tagged; digests in $dir/images.txt"
}

stop() {
  local pid i
  if pid=$(registry_pid); then
    kill -TERM "$pid"
    for i in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
  if [ -w /etc/hosts ]; then remove_hosts_block; fi
}

env_exports() {
  cat <<EOT
export BERTH_REGISTRY=$addr
export BERTH_REGISTRY_PORT=$port
export BERTH_TESTBED_DIR=$dir
export BERTH_TOOLS=$tools
export BERTH_REGISTRY_MIRRORS=$dir/registry-mirrors.toml
EOT
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start) start "$@" ;;
  stop) stop ;;
  env) env_exports ;;
  mirrors-toml) mirrors_toml ;;
  *) die "usage: $0 start [mkimages flags]|stop|env|mirrors-toml" ;;
esac
