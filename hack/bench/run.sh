#!/usr/bin/env bash
# All benchmarks (make bench): CRI lifecycles and bursts, density and the kubelet's steady load, then pulls; berth
# beside containerd 2.4 + runc 1.5, built once from the Go module proxy (hack/bench/tools.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/testbed.sh start -bench >/dev/null
hack/bench/cri.sh
hack/bench/node.sh
hack/bench/pull.sh
