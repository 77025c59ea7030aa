# Shared plumbing of the benchmark scripts (sourced): a berthd and a containerd (2.4 with runc 1.5, built by
# hack/bench/tools.sh), each on its own socket, root and state under $work, pulling from the loopback test bed.
# The caller sets: root (repo), out (report dir). This file sets: tools, crictl, work, pids, and defines the helpers.

die() { echo "bench: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
tools=$(hack/tools.sh)
source hack/lib.sh
crictl=$tools/bin/crictl
export CRI_CONFIG_FILE=/dev/null # no /etc/crictl.yaml lookup (and its warning on every call)
eval "$(hack/testbed.sh env)"
[ -f "$BERTH_REGISTRY_MIRRORS" ] || die "$BERTH_REGISTRY_MIRRORS missing: run hack/testbed.sh start"
make --no-print-directory build >/dev/null
mkdir -p "$out"
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
pids=()

bench_cleanup() {
  local pid sock
  # Pods first, even after a failed run: containerd's shims (and berth's monitors) outlive their daemon by design.
  for sock in "${berth_sock:-}" "${containerd_sock:-}"; do
    [ -n "$sock" ] && "$crictl" --runtime-endpoint "unix://$sock" --timeout 60s rmp -fa >/dev/null 2>&1 || true
  done
  for pid in "${pids[@]}"; do
    if kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
  done
  umount "$work/berth/state/pods" 2>/dev/null || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del berth-bench0 2>/dev/null || true
  ip link del ctrd-bench0 2>/dev/null || true
  # containerd's parent cgroup of pods named without one (critest's, crictl's): left empty behind, removed when so
  [ -z "${containerd_sock:-}" ] || rmdir /sys/fs/cgroup/*/k8s.io 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

# wait_cri SOCKET PID LOG: wait until the CRI server at SOCKET answers, failing if PID exits first.
wait_cri() {
  for _ in $(seq 150); do
    "$crictl" --runtime-endpoint "unix://$1" --timeout 2s version >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$3" >&2; die "runtime exited at start, see $3"; }
    sleep 0.2
  done
  die "no CRI answer on $1, see $3"
}

# bench_net DIR BRIDGE SUBNET: the pod network of a benchmarked runtime: a bridge of its own on a private subnet no
# one else here uses, with host-local IPAM (containerd 1.6 fails a pod whose CNI result has no eth0 address). No
# loopback plugin: berth brings lo up itself (sandbox "configure namespaces") and containerd runs a loopback network
# of its own (go-cni WithLoNetwork), so in the chain it only cost both two more execs per pod cycle (berth's pod
# cycle p50 73.5 → 66 ms, RunPodSandbox 36.1 → 31.4, StopPodSandbox 29.0 → 27.0; 30 samples, load 5–8).
bench_net() {
  mkdir -p "$1"
  cat >"$1/10-bench.conflist" <<JSON
{"cniVersion":"1.0.0","name":"$2","plugins":[
  {"type":"bridge","bridge":"$2","isGateway":true,"ipMasq":false,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"$3"}]],"dataDir":"$work/ipam-$2"}}]}
JSON
}

# start_berthd [LEVEL]: sets berth_sock and berth_pid; LEVEL is berthd's log level (info).
start_berthd() {
  local rc=0
  bench_net "$work/berth/net.d" berth-bench0 10.91.0.0/24
  start_test_berthd "$work/berth" "$out/berthd.log" "${1:-info}" || rc=$?
  pids+=("$berthd_pid")
  [ "$rc" = 0 ] || die "berthd did not start, see $out/berthd.log"
  berth_pid=$berthd_pid berth_sock=$berthd_sock
}

# containerd_hosts DIR: certs.d entries sending every mirrored host and the registry itself to the test bed.
# Each has a server line and a host table: containerd 1.6 rejects a server-only file and then falls back to the
# real host (a DNS query off the machine).
containerd_hosts() {
  local h
  for h in registry.k8s.io k8s.gcr.io gcr.io public.ecr.aws docker.io "$BERTH_REGISTRY"; do
    mkdir -p "$1/$h"
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
      "$BERTH_REGISTRY" "$BERTH_REGISTRY" >"$1/$h/hosts.toml"
  done
}

# start_containerd: sets containerd_sock, containerd_pid and containerd_version: containerd and runc built by
# hack/bench/tools.sh (CONTAINERD=BIN runs another containerd, e.g. Debian's /usr/bin/containerd, with its own runc).
start_containerd() {
  local d=$work/containerd ctrd_tools bin major runc_opts= cni_bin
  ctrd_tools=$(hack/bench/tools.sh)
  bin=${CONTAINERD:-$ctrd_tools/bin/containerd}
  bench_net "$d/net.d" ctrd-bench0 10.92.0.0/24
  containerd_hosts "$d/certs.d"
  containerd_version=$("$bin" --version | awk '{print $3}')
  major=$(echo "$containerd_version" | sed -nE 's/^v?([0-9]+)\..*/\1/p')
  # containerd 2 reads config version 3, where the CRI image and runtime settings moved to plugins of their own.
  if [ "${major:-1}" -ge 2 ]; then
    cri_images='"io.containerd.cri.v1.images"' cri_runtime='"io.containerd.cri.v1.runtime"' version=3
    cni_bin="bin_dirs = [\"$tools/cni\"]"
  else
    cri_images='"io.containerd.grpc.v1.cri"' cri_runtime='"io.containerd.grpc.v1.cri"' version=2
    cni_bin="bin_dir = \"$tools/cni\""
  fi
  [ -n "${CONTAINERD:-}" ] || runc_opts="[plugins.$cri_runtime.containerd.runtimes.runc.options]
  BinaryName = \"$ctrd_tools/bin/runc\""
  cat >"$d/config.toml" <<TOML
version = $version
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = "$d/debug.sock"
[plugins.$cri_images.registry]
  config_path = "$d/certs.d"
[plugins.$cri_images.pinned_images]
  # containerd 2.4's default, pause:3.10.2, is not in the test bed
  sandbox = "registry.k8s.io/pause:3.10.1"
[plugins.$cri_runtime]
  restrict_oom_score_adj = true
[plugins.$cri_runtime.cni]
  conf_dir = "$d/net.d"
  $cni_bin
$runc_opts
TOML
  # The shim is looked up in PATH, then beside containerd.
  PATH=$(dirname "$bin"):$PATH "$bin" --config "$d/config.toml" >"$out/containerd.log" 2>&1 &
  containerd_pid=$!
  pids+=("$containerd_pid")
  wait_cri "$d/containerd.sock" "$containerd_pid" "$out/containerd.log"
  containerd_sock=$d/containerd.sock
}

# check_offline LOG: fails if the containerd log shows a request to a real registry host (the mirror config missed
# one; the test bed's /etc/hosts safety net sends those names to 127.0.0.1, so the attempt fails instead of leaving).
check_offline() {
  ! grep -E 'registry-1\.docker\.io|index\.docker\.io|quay\.io|https://(registry\.k8s\.io|k8s\.gcr\.io|gcr\.io|public\.ecr\.aws)|127\.0\.0\.1:443' "$1" ||
    die "containerd tried a real registry host, see $1"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# print_rows TITLE BERTH_ROWS CONTAINERD_ROWS: one line per row of BERTH_ROWS ("<row> <value>"), beside containerd's
# value for the same row and the ratio berth/containerd; then containerd's rows berth lacks (a run of one runtime).
print_rows() {
  printf '%-28s %12s %16s %8s   (%s)\n' row berth containerd ratio "$1"
  awk 'FILENAME == ARGV[1] { b[$1] = $2; print; next } !($1 in b) { print $1, "-" }' "$2" "$3" | while read -r row v; do
    c=$(awk -v r="$row" '$1 == r { print $2 }' "$3")
    ratio=-
    [ -n "$c" ] && [ "$v" != - ] && awk -v b="$c" 'BEGIN { exit !(b > 0) }' && ratio=$(awk -v a="$v" -v b="$c" 'BEGIN { printf "%.2f", a / b }')
    printf '%-28s %12s %16s %8s\n' "$row" "$v" "${c:--}" "$ratio"
  done
}
