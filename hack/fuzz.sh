#!/usr/bin/env bash
# Runs every fuzz target (func FuzzX in a _test.go file) for a bounded number of executions. The budget is a count,
# not a duration: Go 1.26's fuzz coordinator can fail a run with a spurious "context deadline exceeded" when a
# -fuzztime duration expires under CPU contention (golang/go#75804, fixed in Go 1.27); a count has no deadline.
# FUZZ_SCALE multiplies every budget (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${FUZZ_SCALE:-1}
# The extractor's fuzz inputs write many small files: tmpfs keeps the fuzzer from stalling on disk, and a bounded
# minimisation keeps one new input from eating the whole budget.
[ -d /dev/shm ] && export TMPDIR=/dev/shm

# budget NAME: executions for a target, sized to roughly 20 s on this 2-core machine.
budget() {
  case "$1" in
  FuzzWriter) echo 30000 ;; # each input writes and re-reads a log file
  FuzzApply) echo 30000 ;;
  FuzzRuntimeService) echo 30000 ;; # a CRI call and the harness's reset per input (~1500/s on 2 cores)
  FuzzImageService) echo 50000 ;;
  *) echo 80000 ;;
  esac
}

for f in $(grep -rl --include='*_test.go' '^func Fuzz' .); do
  pkg=./$(dirname "${f#./}")
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    n=$(($(budget "$name") * scale))
    echo "fuzz: $pkg $name for ${n} executions"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="${n}x" -fuzzminimizetime=50x "$pkg"
  done
done
