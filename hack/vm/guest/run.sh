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
source "$share/config" # node, drivers (cgroup drivers to test), recovery, critest, systemd (0/1), critest_args (array)

{
  uname -r >"$out/uname.txt"
  systemctl --version | head -1 >"$out/systemd-version.txt"
  cat /sys/fs/cgroup/cgroup.controllers >"$out/cgroup-controllers.txt" 2>&1
  echo "node $node: kernel $(cat "$out/uname.txt"), $(cat "$out/systemd-version.txt"), /sys/fs/cgroup is" \
    "$(stat -fc %T /sys/fs/cgroup) with [$(cat "$out/cgroup-controllers.txt")], AppArmor" \
    "$([ -d /sys/kernel/security/apparmor ] && echo on || echo off), up $(cut -d' ' -f1 /proc/uptime)s"
}

export BERTH_PREBUILT=1 BERTH_TOOLS=$share/tools BERTH_TESTBED_DIR=$share/testbed
cd "$share/berth" || exit 1
rc=0
: >"$out/timings.txt"

# critest_leg DRIVER: critest with berthd's cgroup_driver = DRIVER; reports in out/DRIVER/, the summary line in
# out/critest-DRIVER.txt.
critest_leg() {
  local driver=$1 t0=$SECONDS crc
  echo "running critest (cgroup driver $driver) ${critest_args[*]}"
  mkdir -p "$out/$driver"
  BERTH_CGROUP_DRIVER=$driver BERTH_CRITEST_OUT=$out/$driver hack/critest.sh "${critest_args[@]}" 2>&1 |
    tee "$out/$driver/critest.out"
  crc=${PIPESTATUS[0]}
  echo "critest-$driver $((SECONDS - t0))s" >>"$out/timings.txt"
  (grep '^critest: ' "$out/$driver/critest.out" || echo "critest: no result (exit $crc)") | tail -1 >"$out/critest-$driver.txt"
  [ "$crc" -eq 0 ] || rc=1
}

# recovery_leg DRIVER: every kill -9 recovery test there is (TestKillRecovery today), the cgroup files (and, with
# systemd, unit properties) of container resources on this node's cgroup v2, and the AppArmor profile containers run
# under (this host has no AppArmor), with cgroup_driver = DRIVER. The network GC test builds its CNI plugins with go,
# which the VM lacks. The summary line in out/recovery-DRIVER.txt.
recovery_leg() {
  local driver=$1 t0=$SECONDS irc tests log=$out/$driver/recovery.log
  echo "running the recovery tests (cgroup driver $driver)"
  mkdir -p "$out/$driver"
  BERTH_CGROUP_DRIVER=$driver BERTH_ITEST_BIN=$share/itest/berthd.test hack/integration.sh \
    -test.run 'TestKillRecovery|Recover|TestContainerResourcesInCgroup|TestAppArmorDefaultProfile' -test.v -test.timeout 5m >"$log" 2>&1
  irc=$?
  echo "recovery-$driver $((SECONDS - t0))s" >>"$out/timings.txt"
  tests=$(sed -nE 's/^--- (PASS|FAIL|SKIP): ([^ ]+) \((.*)\)$/\2 \1 \3/p' "$log" | paste -sd, - | sed 's/,/, /g')
  if [ "$irc" -eq 0 ] && grep -q '^--- PASS' "$log"; then
    echo "recovery: passed ($tests)" >"$out/recovery-$driver.txt"
  else
    echo "recovery: FAILED, exit $irc (${tests:-no test ran})" >"$out/recovery-$driver.txt"
    grep -E -- '--- FAIL|_test.go:[0-9]+:' "$log" | head -20
    tail -5 "$log"
    rc=1
  fi
  cat "$out/recovery-$driver.txt"
}

# unit_leaks: the berth and kubepods units the legs left loaded (none should be: each pod's slice and scopes go with
# it). berth.slice, the parent of the slices berth makes for pods without a cgroup_parent, stays, as kubepods.slice
# does for the kubelet.
unit_leaks() {
  local units
  units=$(systemctl list-units --all --plain --no-legend 'berth*' 'kubepods*' | awk '{print $1}' |
    grep -vxE 'berth-vm.service|berth.slice')
  [ -z "$units" ] && return 0
  echo "leak: systemd units left after the $1 legs: $(echo $units)" | tee -a "$out/unit-leaks.txt"
  rc=1
}

# systemd is PID 1 here, so "auto" would pick the systemd driver: each leg names its driver.
for driver in $drivers; do
  [ "$critest" = 1 ] && critest_leg "$driver"
  [ "$recovery" = 1 ] && recovery_leg "$driver"
  [ "$driver" = systemd ] && unit_leaks "$driver"
done
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
