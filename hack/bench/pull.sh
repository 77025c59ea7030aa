#!/usr/bin/env bash
# Cold-pull benchmark of berth and of containerd 2.4 (hack/bench/tools.sh) in the same run, against the loopback
# test-bed registry. Each runtime gets its own socket and root; the image is removed before every pull.
#   (a) big            bench/big:latest           5 layers, ~200 MB of incompressible data
#   (b) small-files    bench/small-files:latest   50 layers of 400 small files
#   (c) critest        critest -benchmark image lifecycle (PullImage, ImageStatus, RemoveImage) of its default
#                      benchmark image, through the registry mirror mapping, SAMPLES times
# Prints the median of RUNS (default 5; SAMPLES, default 40, for (c)) per row for each runtime and the ratio
# berth/containerd (goals, issue 16: (a) <= 0.7, (b) <= 0.5, (c) lifecycle <= 0.7). It reports; it never asserts
# times.
# Needs root and the test bed with the benchmark images: hack/testbed.sh start -bench.
# Environment: RUNS (5), SAMPLES (40), BERTH_BENCH_OUT (_output/bench: daemon logs, critest data).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${RUNS:-5}
samples=${SAMPLES:-40}
out=${BERTH_BENCH_OUT:-$root/_output/bench}
critest_image=public.ecr.aws/docker/library/busybox:1.35.0-glibc

source hack/bench/lib.sh
for repo in bench/big bench/small-files; do
  curl -sf -o /dev/null "http://$BERTH_REGISTRY/v2/$repo/tags/list" ||
    die "$repo is not in the registry at $BERTH_REGISTRY: run hack/testbed.sh start -bench"
done

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
imagesNumber: $samples
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
start_containerd
measure "$containerd_sock" containerd >"$work/containerd.rows"
check_offline "$out/containerd.log"
print_rows "median of $runs cold pulls ($samples for critest), ms; containerd $containerd_version; $(uptime | sed 's/.*load/load/')" \
  "$work/berth.rows" "$work/containerd.rows"
