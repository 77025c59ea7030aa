#!/usr/bin/env bash
# The offline test bed: a loopback registry holding every image critest needs (hack/cmd/registry,
# hack/cmd/mkimages), and an /etc/hosts safety net so that a registry host that a runtime fails to
# map resolves to 127.0.0.1 instead of sending a DNS query off the machine.
#
# Usage: hack/testbed.sh start [mkimages flags, e.g. -bench]  build, start (or reuse) the registry, push the images
#        hack/testbed.sh stop                                  stop the registry, remove the /etc/hosts block
#        hack/testbed.sh env                                   print shell exports describing the test bed
#        hack/testbed.sh mirrors-toml                          print the berth config drop-in mapping the hosts
#        hack/testbed.sh export DIR [mkimages flags]           fill DIR with the images (DIR/blobs, DIR/images.txt)
#                                                              through a private registry, for a test bed elsewhere
# Environment: BERTH_REGISTRY_PORT (5000), BERTH_TESTBED_DIR (/tmp/berth-testbed),
#              BERTH_TOOLS (~/.cache/berth/tools; hack/install-deps.sh puts Debian's dynamic busybox there),
#              BERTH_PREBUILT=1: no Go toolchain (a node VM): start serves the images an export put in
#              BERTH_TESTBED_DIR with BERTH_TOOLS/bin/berth-registry, and builds and pushes nothing
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
  pid=$(cat "${pidfile:?}" 2>/dev/null) || return 1
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

build_tools() {
  mkdir -p "$tools/bin"
  # Static: the registry also serves inside node VMs (hack/vm) with an older glibc.
  (cd "$root" && CGO_ENABLED=0 go build -o "$registry_bin" ./hack/cmd/registry && go build -o "$mkimages_bin" ./hack/cmd/mkimages) \
    || die "build failed"
}

# serve_registry ADDR BLOBDIR PIDFILE LOG: starts the registry unless the one in PIDFILE runs, and waits until it
# answers. Prints its pid.
serve_registry() {
  local addr=$1 blobs=$2 pidf=$3 log=$4 pid i
  if ! pid=$(pidfile=$pidf registry_pid); then
    setsid "$registry_bin" -addr "$addr" -dir "$blobs" >>"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidf"
  fi
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || die "registry exited; see $log: $(tail -n 3 "$log")"
    curl -sf -o /dev/null "http://$addr/v2/" && break
    [ "$i" -lt 100 ] || die "registry did not answer on http://$addr/v2/"
    sleep 0.1
  done
  # Something else may hold the port: then our registry has exited by now.
  kill -0 "$pid" 2>/dev/null || die "registry exited; see $log: $(tail -n 3 "$log")"
  echo "$pid"
}

# push_images ADDR OUTDIR [mkimages flags]: builds the images and pushes what the registry at ADDR lacks.
push_images() {
  local addr=$1 out=$2
  shift 2
  [ -x "$dynamic_busybox" ] || die "$dynamic_busybox missing: run hack/install-deps.sh"
  if ! (cd "$root" && "$mkimages_bin" -registry "$addr" -busybox-dynamic "$dynamic_busybox" "$@") >"$out/images.txt" 2>"$out/mkimages.log"; then
    cat "$out/mkimages.log" >&2
    die "mkimages failed"
  fi
}

start() {
  [ -w /etc/hosts ] || die "must run as root (edits /etc/hosts)"
  mkdir -p "$dir"
  local pid
  if [ -n "${BERTH_PREBUILT:-}" ]; then
    [ -f "$dir/blobs/manifests.json" ] || die "no images in $dir/blobs: fill it with hack/testbed.sh export"
    pid=$(serve_registry "$addr" "$dir/blobs" "$pidfile" "$dir/registry.log")
  else
    build_tools
    pid=$(serve_registry "$addr" "$dir/blobs" "$pidfile" "$dir/registry.log")
    push_images "$addr" "$dir" "$@"
  fi
  add_hosts_block
  mirrors_toml >"$dir/registry-mirrors.toml"
  echo "testbed: registry http://$addr (pid $pid): $(wc -l <"$dir/images.txt") tags," \
    "$(grep -cv ' unchanged$' "$dir/images.txt" || true) pushed or tagged; digests in $dir/images.txt"
}

# export DIR: the registry's dir is all a test bed needs (it keeps its manifests), so a private registry on a free
# loopback port fills DIR, and a registry elsewhere (a node VM) serves it as it is.
export_dir() {
  local out=${1:?usage: $0 export DIR [mkimages flags]}
  shift
  mkdir -p "$out/blobs"
  # One export at a time per dir (two node VM runs may share it).
  exec 8>"$out/export.lock"
  flock -w 600 8 || die "another export into $out has held it for 10 minutes"
  build_tools
  local port try pid=''
  for try in $(seq 20); do
    port=$(shuf -i 20000-29999 -n 1)
    curl -s -o /dev/null "http://127.0.0.1:$port/" && continue # taken
    pid=$(serve_registry "127.0.0.1:$port" "$out/blobs" "$out/registry.pid" "$out/registry.log" 2>/dev/null) && break
    pid=
  done
  [ -n "$pid" ] || die "no free loopback port for the export registry; see $out/registry.log"
  local rc=0
  (push_images "127.0.0.1:$port" "$out" "$@") || rc=$?
  kill -TERM "$pid" 2>/dev/null
  for try in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$out/registry.pid"
  [ "$rc" -eq 0 ] || exit "$rc"
  # The digests do not depend on the registry's address; the names in images.txt do: name them as served later.
  sed -i "s#^127.0.0.1:$port/#$addr/#" "$out/images.txt"
  echo "testbed: exported $(wc -l <"$out/images.txt") tags to $out"
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
  export) export_dir "$@" ;;
  *) die "usage: $0 start [mkimages flags]|stop|env|mirrors-toml|export DIR [mkimages flags]" ;;
esac
