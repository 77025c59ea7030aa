#!/usr/bin/env bash
# Runs every fuzz target (func FuzzX in a _test.go file) for a bounded time: FUZZTIME, default 20s each.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20s}
# The extractor's fuzz inputs write many small files: tmpfs keeps the fuzzer from stalling on disk, and a bounded
# minimisation keeps one new input from eating the whole budget.
[ -d /dev/shm ] && export TMPDIR=/dev/shm
for f in $(grep -rl --include='*_test.go' '^func Fuzz' .); do
  pkg=./$(dirname "${f#./}")
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "fuzz: $pkg $name for $fuzztime"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime=50x "$pkg"
  done
done
