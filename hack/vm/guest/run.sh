#!/bin/bash
# The payload's entry in a node VM (berth-vm-boot runs it from the share disk, /share, as root). hack/vm/run.sh puts
# it there with config (settings and critest's arguments), berth/ (bin/ and hack/ as in the repo), tools/ (critest,
# crictl, CNI plugins, the registry), testbed/ (the registry's dir) and itest/ (the integration test binary). It runs
# hack/critest.sh and hack/integration.sh as on a host, in their prebuilt mode, and leaves everything in out/.
set -uo pipefail
share=/share
out=$share/out
mkdir -p "$out"
# shellcheck source=/dev/null
source "$share/config" # node, recovery, critest, systemd (0/1), critest_args (array)

{
  uname -r >"$out/uname.txt"
  systemctl --version | head -1 >"$out/systemd-version.txt"
  cat /sys/fs/cgroup/cgroup.controllers >"$out/cgroup-controllers.txt" 2>&1
  echo "node $node: kernel $(cat "$out/uname.txt"), $(cat "$out/systemd-version.txt"), /sys/fs/cgroup is" \
    "$(stat -fc %T /sys/fs/cgroup) with [$(cat "$out/cgroup-controllers.txt")], AppArmor" \
    "$([ -d /sys/kernel/security/apparmor ] && echo on || echo off), up $(cut -d' ' -f1 /proc/uptime)s"
}

export BERTH_PREBUILT=1 BERTH_TOOLS=$share/tools BERTH_TESTBED_DIR=$share/testbed BERTH_CRITEST_OUT=$out
# systemd is PID 1 here, so "auto" would pick the systemd driver; this bed tests cgroupfs on cgroup v2.
export BERTH_CGROUP_DRIVER=cgroupfs
cd "$share/berth" || exit 1
rc=0
: >"$out/timings.txt"

if [ "$critest" = 1 ]; then
  echo "running critest ${critest_args[*]}"
  t0=$SECONDS
  hack/critest.sh "${critest_args[@]}" 2>&1 | tee "$out/critest.out"
  crc=${PIPESTATUS[0]}
  echo "critest $((SECONDS - t0))s" >>"$out/timings.txt"
  (grep '^critest: ' "$out/critest.out" || echo "critest: no result (exit $crc)") | tail -1 >"$out/critest-summary.txt"
  [ "$crc" -eq 0 ] || rc=1
fi

if [ "$recovery" = 1 ]; then
  # Every kill -9 recovery test there is (TestKillRecovery today), the cgroup files of container resources on
  # this node's cgroup v2, and the AppArmor profile containers run under (this host has no AppArmor). The network GC
  # test builds its CNI plugins with go, which the VM lacks.
  echo "running the recovery tests"
  t0=$SECONDS
  BERTH_ITEST_BIN=$share/itest/berthd.test hack/integration.sh -test.run 'TestKillRecovery|Recover|TestContainerResourcesInCgroup|TestAppArmorDefaultProfile' -test.v -test.timeout 5m \
    >"$out/recovery.log" 2>&1
  irc=$?
  echo "recovery $((SECONDS - t0))s" >>"$out/timings.txt"
  tests=$(sed -nE 's/^--- (PASS|FAIL|SKIP): ([^ ]+) \((.*)\)$/\2 \1 \3/p' "$out/recovery.log" | paste -sd, - | sed 's/,/, /g')
  if [ "$irc" -eq 0 ] && grep -q '^--- PASS' "$out/recovery.log"; then
    echo "recovery: passed ($tests)" >"$out/recovery-summary.txt"
  else
    echo "recovery: FAILED, exit $irc (${tests:-no test ran})" >"$out/recovery-summary.txt"
    grep -E -- '--- FAIL|_test.go:[0-9]+:' "$out/recovery.log" | head -20
    tail -5 "$out/recovery.log"
    rc=1
  fi
  cat "$out/recovery-summary.txt"
fi
if [ "${systemd:-0}" = 1 ]; then
  echo "running the systemd leg"
  t0=$SECONDS
  timeout 900 bash "$share/systemd.sh" || rc=1
  echo "systemd $((SECONDS - t0))s" >>"$out/timings.txt"
  [ -s "$out/systemd-summary.txt" ] || echo "systemd: no result (timed out after 900s?)" >"$out/systemd-summary.txt"
  cat "$out/systemd-summary.txt"
fi
dmesg >"$out/dmesg.txt" 2>&1
exit "$rc"
