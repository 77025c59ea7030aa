#!/usr/bin/env bash
# Runs critest (the CRI validation suite) against a fresh berthd on temporary dirs and socket, with images from the
# loopback test-bed registry ("mirror mode": berthd maps the public registry hosts to it, fail-closed).
# Extra arguments go to critest, e.g. hack/critest.sh -ginkgo.focus='Runtime info' -ginkgo.seed=42
# Reports (critest.log, report.json, junit.xml, berthd.log) are kept in $BERTH_CRITEST_OUT (default _output/critest).
# BERTH_CGROUP_DRIVER sets berthd's cgroup_driver (default: the config default, auto).
# BERTH_CRITEST_HANDLER=NAME runs critest against the RuntimeClass handler NAME (-runtime-handler): berthd gets a
# drop-in defining [runtimes.NAME] with the binary of that name on PATH (e.g. crun), the skips of
# hack/critest-skips-NAME.txt are added, and the reports go to _output/critest-NAME.
# BERTH_CRITEST_NRI=1 runs exactly critest's NRI specs instead: berthd gets NRI on a socket in the work dir, and
# critest connects its test plugins there (-nri-socket).
# The last line is "critest: N passed, N failed, N skipped" ("critest (NAME): …" against a handler); the exit code is non-zero when a spec failed or the run
# left something behind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
handler=${BERTH_CRITEST_HANDLER:-}
out=${BERTH_CRITEST_OUT:-$root/_output/critest${handler:+-$handler}}
mkdir -p "$out"
rm -f "$out"/{critest.log,report.json,junit.xml,berthd.log}

tools=$(hack/tools.sh)
source hack/lib.sh
# BERTH_PREBUILT=1 (a node VM, hack/vm): bin/ and the tools are already there and there is no Go toolchain.
if [ -z "${BERTH_PREBUILT:-}" ]; then
  make --no-print-directory build >/dev/null
fi
work=$(mktemp -d /tmp/berth-critest.XXXXXX)
# Pods with their own user namespace run as ids that must reach the pod dirs below (berthd advertises them only then).
chmod 711 "$work"
berthd_pid=
result=
bridge=
own_registry=

shm_before=$(hack/leaks.sh shm)
cleanup() {
  local rc=$?
  stop_test_berthd "$work"
  [ -n "$own_registry" ] && { hack/testbed.sh stop >/dev/null 2>&1 || true; }
  # The test network's bridge outlives its last pod (the bridge plugin never deletes it).
  [ -n "$bridge" ] && { ip link delete "$bridge" 2>/dev/null || true; }
  hack/leaks.sh clean "$work" "$shm_before" || rc=1
  rm -rf "$work" /tmp/cri-test* 2>/dev/null || true
  [ -n "$result" ] && echo "$result"
  exit $rc
}
trap cleanup EXIT

testbed_up "$out/testbed.log"
mkdir -p "$work/net.d"
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

skips=(hack/critest-skips.txt)
handler_args=()
if [ -n "$handler" ]; then
  binary=$(command -v "$handler") || { echo "critest: BERTH_CRITEST_HANDLER=$handler but no $handler on PATH (hack/install-deps.sh installs crun)" >&2; exit 1; }
  mkdir -p "$work/etc/berth.d"
  printf '[runtimes.%s]\nbinary = "%s"\n' "$handler" "$binary" >"$work/etc/berth.d/20-handler.toml"
  [ -f "hack/critest-skips-$handler.txt" ] && skips+=("hack/critest-skips-$handler.txt")
  handler_args=(-runtime-handler "$handler")
fi

nri_args=()
if [ -n "${BERTH_CRITEST_NRI:-}" ]; then
  mkdir -p "$work/etc/berth.d"
  # request_timeout above the default 2 s: the synchronization specs hold a plugin's Synchronize open for 2 s while
  # they create containers; with 2 s the adaptation drops that plugin (as it does under containerd's defaults, which
  # is why containerd "loses" those containers and skips the specs).
  cat >"$work/etc/berth.d/20-nri.toml" <<TOML
[nri]
enable = true
socket_path = "$work/nri.sock"
plugin_path = "$work/nri-plugins"
plugin_config_path = "$work/nri-conf.d"
request_timeout = "${BERTH_CRITEST_NRI_TIMEOUT:-10s}"
TOML
  nri_args=(-nri-socket "$work/nri.sock" -ginkgo.focus '\[k8s\.io\] NRI ')
fi
start_test_berthd "$work" "$out/berthd.log" debug
sock=$berthd_sock

skip=$(cat "${skips[@]}" | sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]*#.*$//' |
  sed 's/.*/(?:&)/' | paste -sd'|' -)
set +e
"$tools/bin/critest" -runtime-endpoint "unix://$sock" -image-endpoint "unix://$sock" "${handler_args[@]}" \
  -ginkgo.skip "$skip" -ginkgo.no-color -ginkgo.timeout 60m \
  -ginkgo.json-report "$out/report.json" -ginkgo.junit-report "$out/junit.xml" "${nri_args[@]}" "$@" >"$out/critest.log" 2>&1
rc=$?
set -e
grep -E '^\s*(\[FAIL\]|Ran [0-9]+ of|(SUCCESS|FAIL)! --)' "$out/critest.log" >&2 || tail -20 "$out/critest.log" >&2
summary=$(grep -E '(SUCCESS|FAIL)! -- ' "$out/critest.log" | tail -1)
passed=$(sed -nE 's/.* ([0-9]+) Passed.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.* ([0-9]+) Failed.*/\1/p' <<<"$summary")
skipped=$(sed -nE 's/.* ([0-9]+) Skipped.*/\1/p' <<<"$summary")
result="critest${handler:+ ($handler)}: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
[ "$rc" -eq 0 ] && [ -n "$summary" ]
