#!/usr/bin/env bash
# All benchmarks (make bench): CRI lifecycles and memory, then pulls. Install Debian's containerd first to get the
# side-by-side columns: apt-get install containerd.
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/testbed.sh start -bench >/dev/null
hack/bench/cri.sh
hack/bench/pull.sh
