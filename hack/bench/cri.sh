#!/usr/bin/env bash
# CRI lifecycle and memory benchmark of berth, and of Debian's containerd in the same run when it is installed.
#   pod-cycle-p50-ms        critest -benchmark "lifecycle of PodSandbox": RunPodSandbox → status → stop → remove
#   container-cycle-p50-ms  critest -benchmark "basic operations on Container": create → start → status → stop → remove
#   daemon-idle-rss-kib     the daemon's RSS with an image pulled and no pod
#   per-pod-pss-kib         PSS of what each pod adds beside its container (berth: monitor; containerd: shim and
#                           pause), mean over PODS idle pods of one container, each in its own PID namespace (the
#                           kubelet's default)
#   per-pod-rss-kib         RSS of the same processes, mean per pod: what one pod would cost with nothing to share
#                           (berth: one idle monitor with one container)
#   shared-pid-pod-pss-kib  the same for pods sharing one PID namespace (shareProcessNamespace): berth adds a pause
#   shared-pid-pod-rss-kib  and its RSS
# Each runtime has a bridge network of its own (hack/bench/lib.sh bench_net).
# It reports medians and ratios berth/containerd (goals: cycles <= 0.5, RSS <= 25 MB, per-pod <= 2 MiB); it never
# asserts times. Environment: SAMPLES (40), PODS (10), BERTH_BENCH_OUT (_output/bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
samples=${SAMPLES:-40}
pods=${PODS:-10}
out=${BERTH_BENCH_OUT:-$root/_output/bench}/cri
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
source hack/bench/lib.sh

# cycles SOCKET NAME: critest's pod and container lifecycle benchmarks; prints "<row> <p50 ms>" rows.
cycles() {
  local dir=$out/critest-$2
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
  echo "pod-cycle-p50-ms $(jq '.datapoints[] | (.endTime - .startTime) / 1000000 | floor' "$dir/pod_benchmark_data.json" | median)"
  # The container sample's start time is taken before CreateContainer: the cycle is create → remove.
  echo "container-cycle-p50-ms $(jq '.datapoints[] | .operationsDurationsNs | add / 1000000 | floor' "$dir/container_benchmark_data.json" | median)"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# per_pod SOCKET NAME OVERHEAD_PATTERN PIDMODE ROW: runs PODS pods of one idle container in the CRI PID namespace mode
# PIDMODE (0 pod, 1 container), then prints the mean PSS of the processes whose command line matches OVERHEAD_PATTERN
# (the runtime's per-pod processes) as ROW (a -pss-kib row), and their mean RSS as the -rss-kib row beside it.
per_pod() {
  local cri=("$crictl" --runtime-endpoint "unix://$1" --image-endpoint "unix://$1" --timeout 60s) i pod ctr total=0 rss=0 n=0 pid
  for i in $(seq "$pods"); do
    cat >"$work/pod-$i.json" <<JSON
{"metadata":{"name":"bench-$i","namespace":"bench","uid":"bench-$i"},"log_directory":"$work/logs/$2-$i",
 "linux":{"security_context":{"namespace_options":{"pid":$4}}}}
JSON
    cat >"$work/ctr-$i.json" <<JSON
{"metadata":{"name":"idle"},"image":{"image":"$image"},"command":["sleep","3600"],"log_path":"idle.log",
 "linux":{"security_context":{"namespace_options":{"pid":$4}}}}
JSON
    pod=$("${cri[@]}" runp "$work/pod-$i.json")
    ctr=$("${cri[@]}" create "$pod" "$work/ctr-$i.json" "$work/pod-$i.json")
    "${cri[@]}" start "$ctr" >/dev/null
  done
  sleep 5 # let the per-pod processes settle to idle
  for pid in $(pgrep -f -- "$3"); do
    total=$((total + $(pss_kib "$pid")))
    rss=$((rss + $(rss_kib "$pid" 2>/dev/null || echo 0)))
    n=$((n + 1))
  done
  "${cri[@]}" rmp -f -a >/dev/null 2>&1 || true
  echo "$5 $((total / pods))"
  echo "${5%-pss-kib}-rss-kib $((rss / pods))"
  [ "$4" = 0 ] || echo "per-pod-processes $((n / pods))"
}

# measure SOCKET NAME PID OVERHEAD_PATTERN: prints the rows of one runtime.
measure() {
  "$crictl" --runtime-endpoint "unix://$1" --image-endpoint "unix://$1" --timeout 5m pull "$image" >/dev/null
  sleep 2
  echo "daemon-idle-rss-kib $(rss_kib "$3")"
  cycles "$1" "$2"
  per_pod "$1" "$2" "$4" 1 per-pod-pss-kib
  per_pod "$1" "$2" "$4" 0 shared-pid-pod-pss-kib
}

start_berthd
measure "$berth_sock" berth "$berth_pid" "$work/berth/state/pods" >"$work/berth.rows"
ctr_version=-
: >"$work/containerd.rows"
if command -v containerd >/dev/null; then
  start_containerd
  measure "$containerd_sock" containerd "$containerd_pid" "containerd-shim-runc-v2 .*-address $work/containerd|^/pause$" >"$work/containerd.rows"
  ctr_version=$(containerd --version | awk '{print $3}')
else
  echo "bench: containerd is not installed (apt-get install containerd): berth only" >&2
fi
print_rows "p50 of $samples samples; memory with $pods idle pods; containerd $ctr_version" "$work/berth.rows" "$work/containerd.rows"
