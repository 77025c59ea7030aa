#!/usr/bin/env bash
# Runs critest (the CRI validation suite) against a fresh berthd on temporary dirs and socket, with images from the
# loopback test-bed registry ("mirror mode": berthd maps the public registry hosts to it, fail-closed).
# Extra arguments go to critest, e.g. hack/critest.sh -ginkgo.focus='Runtime info' -ginkgo.seed=42
# Reports (critest.log, report.json, junit.xml, berthd.log) are kept in $BERTH_CRITEST_OUT (default _output/critest).
# The last line is "critest: N passed, N failed, N skipped"; the exit code is non-zero when a spec failed or the run
# left something behind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${BERTH_CRITEST_OUT:-$root/_output/critest}
mkdir -p "$out"
rm -f "$out"/{critest.log,report.json,junit.xml,berthd.log}

tools=$(hack/tools.sh)
make --no-print-directory build >/dev/null
work=$(mktemp -d /tmp/berth-critest.XXXXXX)
# Pods with their own user namespace run as ids that must reach the pod dirs below (berthd advertises them only then).
chmod 711 "$work"
sock=$work/berth.sock
berthd_pid=
result=
bridge=
own_registry=

shm_before=$(hack/leaks.sh shm)
cleanup() {
  local rc=$?
  if [ -n "$berthd_pid" ] && kill -0 "$berthd_pid" 2>/dev/null; then
    kill -TERM "$berthd_pid"; wait "$berthd_pid" 2>/dev/null || true
  fi
  [ -n "$own_registry" ] && { hack/testbed.sh stop >/dev/null 2>&1 || true; }
  # berthd makes <state>/pods a shared mount on purpose and leaves it for its next start; it is not a leak.
  umount "$work/state/pods" 2>/dev/null || true
  # The test network's bridge outlives its last pod (the bridge plugin never deletes it).
  [ -n "$bridge" ] && { ip link delete "$bridge" 2>/dev/null || true; }
  hack/leaks.sh clean "$work" "$shm_before" || rc=1
  rm -rf "$work" /tmp/cri-test* 2>/dev/null || true
  [ -n "$result" ] && echo "$result"
  exit $rc
}
trap cleanup EXIT

# A registry someone else started (another run, a developer) is reused and left running.
own_registry=
curl -fsS -o /dev/null "http://127.0.0.1:${BERTH_REGISTRY_PORT:-5000}/v2/" 2>/dev/null || own_registry=1
hack/testbed.sh start >"$out/testbed.log" 2>&1 || { cat "$out/testbed.log" >&2; exit 1; }

mkdir -p "$work/etc/berth.d" "$work/net.d"
cat >"$work/etc/berth.toml" <<TOML
root_dir = "$work/root"
state_dir = "$work/state"
listen = "$sock"
[log]
level = "debug"
[cni]
conf_dir = "$work/net.d"
bin_dirs = ["$tools/cni"]
TOML
hack/testbed.sh mirrors-toml >"$work/etc/berth.d/10-mirrors.toml"
# The test network: a bridge of this run's own on a private subnet no one else here uses (runs may overlap), IP
# leases in the work dir.
for n in $(shuf -i 1-250); do
  ip link show "berth-t$n" >/dev/null 2>&1 || { bridge=berth-t$n; break; }
done
cat >"$work/net.d/10-berth-test.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "berth-test",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.${bridge#berth-t}.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$work/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON

bin/berthd --config "$work/etc/berth.toml" >"$out/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 100); do
  "$tools/bin/crictl" --runtime-endpoint "unix://$sock" --timeout 2s version >/dev/null 2>&1 && break
  kill -0 "$berthd_pid" 2>/dev/null || { echo "berthd exited at start:" >&2; cat "$out/berthd.log" >&2; exit 1; }
  sleep 0.2
done

skip=$(sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]*#.*$//' hack/critest-skips.txt |
  sed 's/.*/(?:&)/' | paste -sd'|' -)
set +e
"$tools/bin/critest" -runtime-endpoint "unix://$sock" -image-endpoint "unix://$sock" \
  -ginkgo.skip "$skip" -ginkgo.no-color -ginkgo.timeout 60m \
  -ginkgo.json-report "$out/report.json" -ginkgo.junit-report "$out/junit.xml" "$@" >"$out/critest.log" 2>&1
rc=$?
set -e
grep -E '^\s*(\[FAIL\]|Ran [0-9]+ of|(SUCCESS|FAIL)! --)' "$out/critest.log" >&2 || tail -20 "$out/critest.log" >&2
summary=$(grep -E '(SUCCESS|FAIL)! -- ' "$out/critest.log" | tail -1)
passed=$(sed -nE 's/.* ([0-9]+) Passed.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.* ([0-9]+) Failed.*/\1/p' <<<"$summary")
skipped=$(sed -nE 's/.* ([0-9]+) Skipped.*/\1/p' <<<"$summary")
result="critest: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
[ "$rc" -eq 0 ] && [ -n "$summary" ]
