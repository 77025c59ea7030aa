#!/usr/bin/env bash
# What a node's pods cost, berth beside containerd 2.4 + runc 1.5 (hack/bench/tools.sh) in the same run, measured by
# hack/cmd/kubeletload through the CRI API:
#   density-*   DENSITY pods of one idle container: the whole per-pod overhead (daemon PSS growth + per-pod processes:
#               berth's monitors and pauses; containerd's shims and pauses), per pod; the daemon's RSS at DENSITY pods
#   load-*      LOAD_PODS running pods while a kubelet-shaped client lists pods and containers every second, lists
#               stats every 10 s and asks each pod's and container's status every 10 s, for WINDOW: the daemon's CPU
#               time (utime+stime), the same with its per-pod processes and the helpers they all reaped (runc, CNI)
#               — for containerd the shims, which serve its stats and status calls — and each call's p99
# Goals (issue 16): per-pod overhead <= 2 MiB, berthd RSS <= 30 MB at 110 pods, berthd CPU <= 0.5x containerd's.
# Environment: DENSITY (110), LOAD_PODS (100), WINDOW (5m, a Go duration), BERTH_BENCH_OUT (_output/bench).
# DENSITY=0 or LOAD_PODS=0 skips that part, RUNTIMES ("berth containerd") picks the runtimes: a density row of berth
# alone takes a minute, the whole run ten.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
density=${DENSITY:-110}
load_pods=${LOAD_PODS:-100}
window=${WINDOW:-5m}
runtimes=${RUNTIMES:-berth containerd}
out=${BERTH_BENCH_OUT:-$root/_output/bench}/node
source hack/bench/lib.sh
go build -o "$work/kubeletload" ./hack/cmd/kubeletload

# measure SOCKET NAME PID PER_POD_PATTERN: prints the rows of one runtime.
measure() {
  local run=("$work/kubeletload" -endpoint "$1" -pid "$3" -per-pod "$4" -log-dir "$work/logs/$2")
  if [ "$density" -gt 0 ]; then
    "${run[@]}" -pods "$density" 2>>"$out/kubeletload-$2.log" || die "density against $2 failed, see $out/kubeletload-$2.log"
  fi
  if [ "$load_pods" -gt 0 ]; then
    "${run[@]}" -pods "$load_pods" -window "$window" 2>>"$out/kubeletload-$2.log" ||
      die "steady load against $2 failed, see $out/kubeletload-$2.log"
  fi
}

touch "$work/berth.rows" "$work/containerd.rows"
case " $runtimes " in *" berth "*)
  start_berthd
  measure "$berth_sock" berth "$berth_pid" "berth-monitor .*-dir $work/berth/" >"$work/berth.rows"
esac
case " $runtimes " in *" containerd "*)
  start_containerd
  measure "$containerd_sock" containerd "$containerd_pid" "containerd-shim-runc-v2 .*-address $work/containerd/" >"$work/containerd.rows"
  check_offline "$out/containerd.log"
esac
print_rows "$density pods for density; $load_pods pods, $window for load; containerd ${containerd_version:-not run}; $(uptime | sed 's/.*load/load/')" \
  "$work/berth.rows" "$work/containerd.rows"
