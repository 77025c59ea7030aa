#!/usr/bin/env bash
# Where berth's pod time goes (issue 16), on a berthd of its own: CYCLES pod cycles (runp → stopp → rmp through
# crictl, and the same with one container created, started and removed) under
#   - pprof: a CPU profile of berthd over the cycles (berthd's metrics.pprof)
#   - strace -f -c: the syscalls of berthd and of everything it spawns (monitors, runc helpers, CNI plugins)
#   - strace -f -e execve,fsync,...: processes spawned and fsyncs per pod and per container, and each CNI plugin's
#     wall time (execve to exit)
# Writes the raw data to BERTH_BENCH_OUT/profile (_output/bench/profile) and prints a summary.
# Environment: CYCLES (20).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cycles=${CYCLES:-20}
out=${BERTH_BENCH_OUT:-$root/_output/bench}/profile
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
metrics=127.0.0.1:${BERTH_PROFILE_PORT:-19391}
source hack/bench/lib.sh
command -v strace >/dev/null || die "strace is missing: apt-get install strace"

mkdir -p "$work/berth/etc/berth.d"
printf '[metrics]\naddress = "%s"\npprof = true\n' "$metrics" >"$work/berth/etc/berth.d/20-pprof.toml"
start_berthd debug # for the per-stage times
cri=("$crictl" --runtime-endpoint "unix://$berth_sock" --image-endpoint "unix://$berth_sock" --timeout 60s)
"${cri[@]}" pull "$image" >/dev/null
cat >"$work/pod.json" <<JSON
{"metadata":{"name":"prof","namespace":"bench","uid":"prof"},"log_directory":"$work/logs",
 "linux":{"security_context":{"namespace_options":{"pid":1}}}}
JSON
cat >"$work/ctr.json" <<JSON
{"metadata":{"name":"c"},"image":{"image":"$image"},"command":["sleep","3600"],"log_path":"c.log",
 "linux":{"security_context":{"namespace_options":{"pid":1}}}}
JSON
# pods [WITH_CONTAINER]: CYCLES pod cycles, with one container each when WITH_CONTAINER is set.
pods() {
  local pod ctr
  for _ in $(seq "$cycles"); do
    pod=$("${cri[@]}" runp "$work/pod.json")
    if [ -n "${1:-}" ]; then
      ctr=$("${cri[@]}" create "$pod" "$work/ctr.json" "$work/pod.json")
      "${cri[@]}" start "$ctr" >/dev/null
      "${cri[@]}" stop -t 0 "$ctr" >/dev/null
      "${cri[@]}" rm "$ctr" >/dev/null
    fi
    "${cri[@]}" stopp "$pod" >/dev/null
    "${cri[@]}" rmp "$pod" >/dev/null
  done
}
t0=$(date +%s%N)
pods # warms up caches, and times the cycles the CPU profile then covers (a profile ends at its duration only)
t1=$(date +%s%N)
pods with-container
t2=$(date +%s%N)
curl -sf -o "$out/cpu.pprof" "http://$metrics/debug/pprof/profile?seconds=$(((t2 - t0) / 1000000000 + 1))" &
prof=$!
pods
pods with-container
wait "$prof"
# The stage medians are of these untraced cycles only: strace slows each traced call several times over.
untraced=$(wc -l <"$out/berthd.log")
go tool pprof -top -nodecount=40 bin/berthd "$out/cpu.pprof" >"$out/cpu.top" 2>/dev/null || true

strace -f -qq -c -o "$out/strace-c.txt" -p "$berth_pid" &
st=$!
sleep 1
pods
kill -INT "$st"; wait "$st" 2>/dev/null || true

for mode in pod container; do
  strace -f -tt -T -q -y -e trace=execve,fsync,fdatasync,sync_file_range,syncfs -e signal=none \
    -o "$out/strace-$mode.txt" -p "$berth_pid" &
  st=$!
  sleep 1
  if [ "$mode" = pod ]; then pods; else pods with-container; fi
  kill -INT "$st"; wait "$st" 2>/dev/null || true
done

{
  echo "== $cycles pod cycles: $(((t1 - t0) / 1000000 / cycles)) ms each, with one container $(((t2 - t1) / 1000000 / cycles)) ms, without tracing; $(uptime | sed 's/.*load/load/')"
  for mode in pod container; do
    f=$out/strace-$mode.txt
    echo "== per $mode cycle (pod cycle$([ $mode = container ] && echo ' with one container')):"
    echo "   execve $(grep -c 'execve(' "$f" | awk -v n="$cycles" '{ printf "%.1f", $1 / n }')," \
      "fsync+fdatasync $(grep -cE '(fsync|fdatasync)\(' "$f" | awk -v n="$cycles" '{ printf "%.1f", $1 / n }')"
    echo "   fsyncs by file (-y), per cycle:"
    grep -oE '(fsync|fdatasync)\([0-9]+<[^>]*>' "$f" | sed -E 's/.*<//; s/>$//; s|/[0-9a-f]{64}|/<id>|g; s|/tmp/berth-bench\.[^/]*||; s|/\.tmp-[^/]*$|/.tmp-*|' |
      sed -E 's|\.tmp[0-9]*$||; s|\.[0-9]+$||' | sort | uniq -c | sort -rn | head -12 |
      awk -v n="$cycles" '{ printf "     %6.1f %s\n", $1 / n, $2 }'
    echo "   programs run, per cycle:"
    grep -o 'execve("[^"]*"' "$f" | sed 's/execve("//; s/"$//' | sort | uniq -c | sort -rn |
      awk -v n="$cycles" '{ printf "     %6.1f %s\n", $1 / n, $2 }'
  done
  echo "== CNI plugins, wall ms from execve to exit (median over the pod cycles):"
  awk '/execve\(".*\/cni\/[a-z-]+"/ { split($0, a, "\""); n = split(a[2], p, "/"); name[$1] = p[n]
                                      split($2, t, ":"); start[$1] = t[1] * 3600 + t[2] * 60 + t[3] }
       /\+\+\+ exited/ && ($1 in name) { split($2, t, ":"); print name[$1], int((t[1] * 3600 + t[2] * 60 + t[3] - start[$1]) * 1000); delete name[$1] }' \
    "$out/strace-pod.txt" | sort | awk '{ v[$1] = v[$1] " " $2 } END { for (k in v) print k, v[k] }' |
    while read -r name vals; do echo "   $name $(echo "$vals" | tr ' ' '\n' | median) (n=$(echo "$vals" | wc -w))"; done
  echo "== CRI calls, pod and container stages, median ms over the untraced cycles (berthd's debug log):"
  # slog prints durations as Go does: 850µs, 12.5ms, 1.2s
  awk '/msg="(cri call|pod stage done|pod stage undone|pod network released|container stage done|container stage undone)"/ {
         what = ""; took = ""
         for (i = 1; i <= NF; i++) {
           if ($i ~ /^rpc=/) what = substr($i, 5)
           if ($i ~ /^stage=/) what = (/undone/ ? "undo:" : "do:") (/container stage/ ? "ctr:" : "") substr($i, 7)
           if ($i ~ /^took=/) took = substr($i, 6)
         }
         if (/pod network released/) what = "stop:network"
         if ($0 ~ /stage="/) { match($0, /stage="[^"]*"/); what = (/undone/ ? "undo:" : "do:") (/container stage/ ? "ctr:" : "") substr($0, RSTART + 7, RLENGTH - 8) }
         gsub(/ /, "_", what)
         v = took + 0
         if (took ~ /ns$/) v /= 1000000; else if (took ~ /µs$/) v /= 1000; else if (took ~ /ms$/) v += 0; else if (took ~ /[0-9]s$/) v *= 1000
         print what, v }' <(head -n "$untraced" "$out/berthd.log") | sed 's/ /\t/' | sort -t"$(printf '\t')" -k1,1 |
    awk -F'\t' '{ v[$1] = v[$1] " " $2 } END { for (k in v) print k "\t" v[k] }' | sort |
    while IFS="$(printf '\t')" read -r name vals; do
      printf '   %-28s %8s (n=%s)\n' "$name" "$(echo "$vals" | tr ' ' '\n' | grep . | median)" "$(echo "$vals" | wc -w)"
    done
  echo "== syscalls (strace -f -c, $cycles pod cycles):"
  head -25 "$out/strace-c.txt"
  echo "== berthd CPU profile (top):"
  head -30 "$out/cpu.top"
} | tee "$out/summary.txt"
