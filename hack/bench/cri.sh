#!/usr/bin/env bash
# CRI lifecycle benchmark of berth and of containerd 2.4 + runc 1.5 (hack/bench/tools.sh) in the same run.
#   container-cycle-p50-ms  critest -benchmark "basic operations on Container": create → start → status → stop → remove
#   pod-cycle-p50-ms        critest -benchmark "lifecycle of PodSandbox": RunPodSandbox → status → stop → remove,
#   run/stop/remove-pod-p50-ms  and its RunPodSandbox, StopPodSandbox and RemovePodSandbox parts
#   daemon-idle-rss-kib     the daemon's RSS with an image pulled and no pod
#   burst-up-ms             BURST pods of one container (crictl run), 10 at a time, until all run
#   burst-down-ms           the same pods stopped and removed (crictl stopp, rmp), 10 at a time
# Each runtime has a bridge network of its own (hack/bench/lib.sh bench_net). Density and the kubelet's steady load
# are hack/bench/node.sh.
# It reports medians and ratios berth/containerd (goals, issue 16: pod cycle <= 0.5, container cycle <= 0.35, burst
# up <= 0.5, down <= 0.4); it never asserts times. Environment: SAMPLES (40), BURST (50), BERTH_BENCH_OUT
# (_output/bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
samples=${SAMPLES:-40}
burst=${BURST:-50}
out=${BERTH_BENCH_OUT:-$root/_output/bench}/cri
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
source hack/bench/lib.sh

# cycles SOCKET NAME: critest's pod and container lifecycle benchmarks; prints "<row> <p50 ms>" rows.
cycles() {
  local dir=$out/critest-$2 i
  rm -rf "$dir" && mkdir -p "$dir"
  cat >"$work/params-$2.yaml" <<YAML
containersNumber: $samples
containersNumberParallel: 1
podsNumber: $samples
podsNumberParallel: 1
YAML
  "$tools/bin/critest" -benchmark -runtime-endpoint "unix://$1" -image-endpoint "unix://$1" \
    -benchmarking-params-file "$work/params-$2.yaml" -benchmarking-output-dir "$dir" \
    -ginkgo.focus 'lifecycle of PodSandbox|basic operations on Container' -ginkgo.skip 'from scratch' -ginkgo.no-color >"$dir/critest.log" 2>&1 ||
    die "critest -benchmark failed against $2, see $dir/critest.log"
  # The container sample's start time is taken before CreateContainer: the cycle is create → remove.
  echo "container-cycle-p50-ms $(jq '.datapoints[] | .operationsDurationsNs | add / 1000000 | floor' "$dir/container_benchmark_data.json" | median)"
  echo "pod-cycle-p50-ms $(jq '.datapoints[] | (.endTime - .startTime) / 1000000 | floor' "$dir/pod_benchmark_data.json" | median)"
  # operationsDurationsNs: CreatePod, StatusPod, StopPod, RemovePod
  for i in 0:run 2:stop 3:remove; do
    echo "${i#*:}-pod-p50-ms $(jq ".datapoints[] | .operationsDurationsNs[${i%%:*}] / 100000 | floor / 10" "$dir/pod_benchmark_data.json" | median)"
  done
}

# burst SOCKET NAME: BURST pods of one container started 10 at a time until all run, then stopped and removed 10 at
# a time; prints the wall times in ms.
burst() {
  local cri="$crictl --runtime-endpoint unix://$1 --image-endpoint unix://$1 --timeout 120s" i t0 t1 t2
  for i in $(seq "$burst"); do
    cat >"$work/burst-pod-$i.json" <<JSON
{"metadata":{"name":"burst-$i","namespace":"bench","uid":"burst-$2-$i"},"log_directory":"$work/logs/burst-$2-$i",
 "linux":{"security_context":{"namespace_options":{"pid":1}}}}
JSON
  done
  cat >"$work/burst-ctr.json" <<JSON
{"metadata":{"name":"idle"},"image":{"image":"$image"},"command":["sleep","3600"],"log_path":"idle.log",
 "linux":{"security_context":{"namespace_options":{"pid":1}}}}
JSON
  t0=$(date +%s%N)
  seq "$burst" | xargs -P 10 -I{} sh -c "$cri run --no-pull $work/burst-ctr.json $work/burst-pod-{}.json >/dev/null 2>>$out/crictl-$2.log" ||
    die "burst against $2 failed, see $out/crictl-$2.log"
  t1=$(date +%s%N)
  [ "$($cri ps -q --state running | wc -l)" = "$burst" ] || die "burst against $2: not all $burst containers run"
  $cri pods -q | xargs -P 10 -I{} sh -c "$cri stopp {} >/dev/null && $cri rmp {} >/dev/null" 2>>"$out/crictl-$2.log" ||
    die "burst teardown against $2 failed, see $out/crictl-$2.log"
  t2=$(date +%s%N)
  echo "burst-up-ms $(((t1 - t0) / 1000000))"
  echo "burst-down-ms $(((t2 - t1) / 1000000))"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# measure SOCKET NAME PID: prints the rows of one runtime.
measure() {
  "$crictl" --runtime-endpoint "unix://$1" --image-endpoint "unix://$1" --timeout 5m pull "$image" >/dev/null
  sleep 2
  echo "daemon-idle-rss-kib $(rss_kib "$3")"
  cycles "$1" "$2"
  burst "$1" "$2"
}

start_berthd
measure "$berth_sock" berth "$berth_pid" >"$work/berth.rows"
start_containerd
measure "$containerd_sock" containerd "$containerd_pid" >"$work/containerd.rows"
check_offline "$out/containerd.log"
print_rows "p50 of $samples samples; burst of $burst pods; containerd $containerd_version; $(uptime | sed 's/.*load/load/')" \
  "$work/berth.rows" "$work/containerd.rows"
