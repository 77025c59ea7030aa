#!/usr/bin/env bash
# Cold-pull benchmark of berth, and of Debian's containerd in the same run when it is installed, against the
# loopback test-bed registry. Each runtime gets its own socket and root; the image is removed before every pull.
#   (a) big            bench/big:latest           5 layers, ~200 MB of incompressible data
#   (b) small-files    bench/small-files:latest   50 layers of 400 small files
#   (c) critest        critest -benchmark image lifecycle (PullImage, ImageStatus, RemoveImage) of its default
#                      benchmark image, through the registry mirror mapping
# Prints the median of RUNS (default 5) per row for each runtime and the ratio berth/containerd (goals: (a) <= 0.7,
# (b) <= 1). It reports; it never asserts times.
# Needs root and the test bed with the benchmark images: hack/testbed.sh start -bench.
# Environment: RUNS (5), BERTH_BENCH_OUT (_output/bench: daemon logs, critest data).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${RUNS:-5}
out=${BERTH_BENCH_OUT:-$root/_output/bench}
critest_image=public.ecr.aws/docker/library/busybox:1.35.0-glibc

die() { echo "bench: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
tools=$(hack/tools.sh)
crictl=$tools/bin/crictl
eval "$(hack/testbed.sh env)"
for repo in bench/big bench/small-files; do
  curl -sf -o /dev/null "http://$BERTH_REGISTRY/v2/$repo/tags/list" ||
    die "$repo is not in the registry at $BERTH_REGISTRY: run hack/testbed.sh start -bench"
done
[ -f "$BERTH_REGISTRY_MIRRORS" ] || die "$BERTH_REGISTRY_MIRRORS missing: run hack/testbed.sh start -bench"
make --no-print-directory build >/dev/null
mkdir -p "$out"
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
  done
  # containerd leaves its overlay snapshots mounted only while containers run; none ran here.
  rm -rf "$work"
}
trap cleanup EXIT

# wait_cri SOCKET PID LOG: wait until the CRI server at SOCKET answers, failing if PID exits first.
wait_cri() {
  for _ in $(seq 150); do
    "$crictl" --runtime-endpoint "unix://$1" --timeout 2s version >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$3" >&2; die "runtime exited at start, see $3"; }
    sleep 0.2
  done
  die "no CRI answer on $1, see $3"
}

start_berthd() {
  local d=$work/berth
  mkdir -p "$d/etc/berth.d" "$d/net.d"
  cat >"$d/etc/berth.toml" <<TOML
root_dir = "$d/root"
state_dir = "$d/state"
listen = "$d/berth.sock"
[cni]
conf_dir = "$d/net.d"
bin_dirs = ["$tools/cni"]
TOML
  cp "$BERTH_REGISTRY_MIRRORS" "$d/etc/berth.d/10-mirrors.toml"
  bin/berthd --config "$d/etc/berth.toml" >"$out/berthd.log" 2>&1 &
  pids+=($!)
  wait_cri "$d/berth.sock" "$!" "$out/berthd.log"
  berth_sock=$d/berth.sock
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

start_containerd() {
  local d=$work/containerd major
  mkdir -p "$d/net.d"
  containerd_hosts "$d/certs.d"
  major=$(containerd --version | sed -nE 's/.* v?([0-9]+)\.[0-9]+\.[0-9]+.*/\1/p')
  # containerd 2 reads config version 3, where the CRI image and runtime settings moved to plugins of their own.
  if [ "${major:-1}" -ge 2 ]; then
    cri_images='"io.containerd.cri.v1.images"' cri_runtime='"io.containerd.cri.v1.runtime"' version=3
  else
    cri_images='"io.containerd.grpc.v1.cri"' cri_runtime='"io.containerd.grpc.v1.cri"' version=2
  fi
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
[plugins.$cri_runtime]
  restrict_oom_score_adj = true
[plugins.$cri_runtime.cni]
  conf_dir = "$d/net.d"
  bin_dir = "$tools/cni"
TOML
  containerd --config "$d/config.toml" >"$out/containerd.log" 2>&1 &
  pids+=($!)
  wait_cri "$d/containerd.sock" "$!" "$out/containerd.log"
  containerd_sock=$d/containerd.sock
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# cold_pulls SOCKET REF: RUNS pulls of REF, each after removing it; prints the median wall time in ms.
cold_pulls() {
  local cri=("$crictl" --runtime-endpoint "unix://$1" --image-endpoint "unix://$1" --timeout 10m) t0 t1
  : >"$work/times"
  for _ in $(seq "$runs"); do
    "${cri[@]}" rmi "$2" >/dev/null 2>&1 || true
    t0=$(date +%s%N)
    "${cri[@]}" pull "$2" >/dev/null 2>>"$out/crictl.log" || die "pull $2 from unix://$1 failed, see $out/crictl.log"
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000)) >>"$work/times"
  done
  "${cri[@]}" rmi "$2" >/dev/null 2>&1 || true
  median <"$work/times"
}

# critest_lifecycle SOCKET NAME: runs critest's image lifecycle benchmark; prints the median pull and the median
# whole lifecycle, in ms, on one line.
critest_lifecycle() {
  local dir=$out/critest-$2 data
  rm -rf "$dir" && mkdir -p "$dir"
  cat >"$work/params-$2.yaml" <<YAML
imagesNumber: $runs
imagesNumberParallel: 1
imageBenchmarkTimeoutSeconds: 600
imagePullingBenchmarkImage: $critest_image
YAML
  "$tools/bin/critest" -benchmark -runtime-endpoint "unix://$1" -image-endpoint "unix://$1" \
    -benchmarking-params-file "$work/params-$2.yaml" -benchmarking-output-dir "$dir" \
    -ginkgo.skip 'PodSandbox|Container|listing' -ginkgo.no-color >"$dir/critest.log" 2>&1 ||
    die "critest -benchmark failed against $2, see $dir/critest.log"
  data=$dir/image_lifecycle_benchmark_data.json
  # The file is indented JSON: each datapoint lists operationsDurationsNs (pull, status, remove) one per line.
  echo "$(awk '/"operationsDurationsNs"/ { getline; gsub(/[ ,]/, ""); print int($0 / 1000000) }' "$data" | median)" \
    "$(awk '/"operationsDurationsNs"/ { s = 0; for (i = 0; i < 3; i++) { getline; gsub(/[ ,]/, ""); s += $0 }
                                        print int(s / 1000000) }' "$data" | median)"
}

# measure SOCKET NAME: prints the rows of one runtime, "<row> <ms>".
measure() {
  local ms
  ms=$(cold_pulls "$1" "$BERTH_REGISTRY/bench/big:latest")
  echo "big $ms"
  ms=$(cold_pulls "$1" "$BERTH_REGISTRY/bench/small-files:latest")
  echo "small-files $ms"
  ms=$(critest_lifecycle "$1" "$2")
  echo "critest-pull ${ms% *}"
  echo "critest-lifecycle ${ms#* }"
}

start_berthd
measure "$berth_sock" berth >"$work/berth.rows"
ctr_version=-
: >"$work/containerd.rows"
if command -v containerd >/dev/null; then
  start_containerd
  measure "$containerd_sock" containerd >"$work/containerd.rows"
  ctr_version=$(containerd --version | awk '{print $3}')
else
  echo "bench: containerd is not installed (apt-get install containerd): berth only" >&2
fi

printf '%-20s %12s %16s %8s   (median of %d cold pulls, ms; containerd %s)\n' row berth containerd ratio "$runs" "$ctr_version"
while read -r row ms; do
  c=$(awk -v r="$row" '$1 == r { print $2 }' "$work/containerd.rows")
  ratio=-
  [ -n "$c" ] && [ "$c" -gt 0 ] && ratio=$(awk -v a="$ms" -v b="$c" 'BEGIN { printf "%.2f", a / b }')
  printf '%-20s %12s %16s %8s\n' "$row" "$ms" "${c:--}" "$ratio"
done <"$work/berth.rows"
