#!/usr/bin/env bash
# The node VM test bed: boots a real node OS (Debian's kernel and systemd, pure cgroup v2, no network device) under
# qemu and runs berth's critest suite and kill -9 recovery tests in it, with the binaries built here.
#
# Usage: hack/vm/run.sh NODE [critest flags...]     NODE: debian12 (kernel 6.1, systemd 252)
#                                                         debian11 (kernel 5.10, systemd 247)
#        hack/vm/run.sh all [critest flags...]      every node in turn (make test-vm); one critest line per node
#
#   hack/vm/run.sh debian12                                                    the full suite + recovery tests
#   BERTH_VM_RECOVERY=0 hack/vm/run.sh debian11 -ginkgo.focus='Runtime info'   a focused run (~40 s)
#   BERTH_VM_CRITEST=0 hack/vm/run.sh debian12                                 the recovery tests only
#   BERTH_VM_CRITEST=0 BERTH_VM_RECOVERY=0 hack/vm/run.sh debian12             the systemd leg only (~4 min)
#   hack/vm/run.sh debian12 -ginkgo.focus='basic operations on container' -ginkgo.seed=42
#
# Each run rebuilds bin/ (make build), so it tests the working tree as it is. critest and the recovery tests run
# once per cgroup driver (debian12: systemd, then cgroupfs; debian11: cgroupfs). Results land in _output/vm/NODE/:
# guest.log (the payload's console output), DRIVER/ (critest.log, report.json, junit.xml, berthd.log, critest.out,
# recovery.log), unit-leaks.txt (systemd units a run left), dmesg.txt, uname.txt, systemd-version.txt,
# cgroup-controllers.txt, timings.txt, serial.log (the whole console). The last lines are, per driver,
# "critest (NODE, DRIVER): N passed, N failed, N skipped" and the recovery result, then the systemd leg's
# (hack/vm/guest/systemd.sh: berth-installer and berthd.service on the node's systemd, log in systemd.log); the exit
# code is non-zero when anything failed.
#
# Environment: BERTH_VM_RECOVERY=0 skips the recovery tests, BERTH_VM_CRITEST=0 critest;
#   BERTH_VM_DRIVERS       the cgroup drivers to test, in order ("systemd cgroupfs" on debian12, else "cgroupfs")
#   BERTH_VM_SYSTEMD       1 runs the systemd leg, 0 skips it (default: 1 on debian12, 0 on debian11)
#   BERTH_VM_TIMEOUT       seconds for one boot (3600), BERTH_VM_BOOT_TIMEOUT until the payload starts (300)
#   BERTH_VM_ACCEL         auto (KVM only where the CPU has vmx/svm, falling back to TCG), tcg or kvm
#   BERTH_VM_CACHE         ~/.cache/berth/vm: the images (by a hash of their inputs), the test registry's dir
#   BERTH_VM_MIRROR        the Debian mirror (default: the host's apt sources)
#   BERTH_VM_NODES         the nodes of "all" ("debian12 debian11")
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source hack/vm/lib.sh

[ $# -ge 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
node=$1
shift

if [ "$node" = all ]; then
  lines=() rc=0
  for n in ${BERTH_VM_NODES:-debian12 debian11}; do
    "$0" "$n" "$@" || rc=1
    lines+=("$(cat "_output/vm/$n/result.txt" 2>/dev/null || echo "critest ($n): no result")") # and its other lines
  done
  printf '%s\n' "${lines[@]}"
  exit "$rc"
fi

case "$node" in debian12 | debian11) ;; *) vm_die "unknown node $node (debian12, debian11, all)" ;; esac
[ "$(id -u)" = 0 ] || vm_die "must run as root"
recovery=${BERTH_VM_RECOVERY:-1}
critest=${BERTH_VM_CRITEST:-1}
systemd_default=0
[ "$node" = debian12 ] && systemd_default=1
systemd=${BERTH_VM_SYSTEMD:-$systemd_default}
# The cgroup drivers each node tests, in one boot: Debian 12 both (systemd is PID 1 there, as on kubeadm nodes),
# Debian 11 cgroupfs only (another ~5 min of CI for the same systemd code on an older systemd).
case "$node" in debian12) default_drivers="systemd cgroupfs" ;; *) default_drivers=cgroupfs ;; esac
drivers=${BERTH_VM_DRIVERS:-$default_drivers}
for d in $drivers; do case "$d" in systemd | cgroupfs) ;; *) vm_die "BERTH_VM_DRIVERS: unknown cgroup driver $d" ;; esac; done
limit=${BERTH_VM_TIMEOUT:-3600}
out=$root/_output/vm/$node
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d /tmp/berth-vm.XXXXXX)
vm_qemu_pid=
cleanup() {
  local rc=$?
  vm_kill_qemu
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_start=$SECONDS
timeout 1800 hack/install-deps.sh
image=$(hack/vm/image.sh "$node")
t_image=$SECONDS

# The payload: what the guest runs, all prebuilt here (the guest has no Go toolchain).
p=$work/payload
mkdir -p "$p/berth/bin" "$p/berth/hack" "$p/tools/bin" "$p/tools/cni" "$p/itest" "$p/testbed"
timeout 900 make --no-print-directory build installer >/dev/null
tools=$(timeout 1800 hack/tools.sh)
# Push on the host into a registry dir of its own (the registry keeps its manifests there), served as it is in the
# guest: the image builder needs Go and the host's busybox and glibc, which the guest has not.
timeout 900 hack/testbed.sh export "$(vm_cache)/testbed" >"$work/export.log" 2>&1 || { cat "$work/export.log" >&2; vm_die "testbed export failed"; }
if [ "$recovery" = 1 ]; then
  # Static: bullseye's glibc (2.31) is older than the host's.
  timeout 900 env CGO_ENABLED=1 go test -c -tags integration,seccomp,netgo,osusergo -ldflags '-extldflags -static' \
    -o "$p/itest/berthd.test" ./cmd/berthd
fi
cp bin/berthd bin/berth-monitor "$p/berth/bin/"
cp hack/*.sh hack/critest-skips.txt "$p/berth/hack/"
cp "$tools/bin/critest" "$tools/bin/crictl" "$p/tools/bin/"
# The payload's own registry build: the tools dir's is rebuilt by every hack/testbed.sh start, perhaps by another
# checkout sharing the cache.
CGO_ENABLED=0 timeout 600 go build -o "$p/tools/bin/berth-registry" ./hack/cmd/registry
# The systemd leg: the installer, and a stand-in Kubernetes API for its switch mode.
CGO_ENABLED=0 timeout 600 go build -o "$p/tools/bin/fakeapi" ./hack/cmd/fakeapi
cp bin/berth-installer "$p/tools/bin/"
cp hack/vm/guest/systemd.sh "$p/systemd.sh"
cp "$tools"/cni/* "$p/tools/cni/"
cp -r "$(vm_cache)/testbed/blobs" "$(vm_cache)/testbed/images.txt" "$p/testbed/"
cp hack/vm/guest/run.sh "$p/run.sh"
# Every executable must be static: the nodes' glibc may be older than the host's. A dynamic one names its
# interpreter in its first page.
for f in "$p"/berth/bin/* "$p"/tools/bin/* "$p"/tools/cni/* "$p"/itest/*; do
  [ -f "$f" ] || continue
  ! head -c 4096 "$f" | grep -qa 'ld-linux' || vm_die "$f is dynamically linked; the payload needs static binaries"
done
echo "$((limit - 120))" >"$p/timeout"
{
  printf 'node=%q drivers=%q recovery=%q critest=%q systemd=%q\n' "$node" "$drivers" "$recovery" "$critest" "$systemd"
  printf 'critest_args=('
  [ $# -eq 0 ] || printf '%q ' "$@"
  printf ')\n'
} >"$p/config"
t_payload=$SECONDS

rc=0
for accel in $(vm_accel | tr ' ' '_'); do
  accel=${accel//_/ }
  # Results go to the same disk: a fresh one per boot.
  rm -f "$work/share.img"
  timeout 300 mkfs.ext4 -q -L berth-share -d "$p" "$work/share.img" "$(($(du -sm "$p" | cut -f1) + 2048))M" \
    >/dev/null 2>&1 || vm_die "mkfs.ext4 of the share disk failed"
  echo "vm: booting $node ($accel; $(head -1 "$image/info.txt"))" >&2
  t_boot=$SECONDS
  rc=0
  # shellcheck disable=SC2086 # accel is words
  vm_boot "$image" "$work/share.img" "$out/serial.log" "$limit" $accel || rc=$?
  t_done=$SECONDS
  # A KVM that cannot run this kernel (an internal error, a hang, an abort before the payload started): TCG next.
  [ "$rc" -ne 0 ] && [[ $accel == *kvm* ]] && [ -z "$vm_booted_after" ] && continue
  break
done

# Whatever the guest wrote, also after a failure.
mkdir -p "$work/res"
timeout 120 debugfs -R "rdump /out $work/res" "$work/share.img" >/dev/null 2>&1 || true
[ -d "$work/res/out" ] && cp -a "$work/res/out/." "$out/"
guest_rc=$(cat "$out/exit-code" 2>/dev/null || echo none)

echo "== $node: guest log tail (all in $out) ==" >&2
tail -n 25 "$out/guest.log" >&2 2>/dev/null || echo "(no guest log)" >&2
uptime=$(sed -nE 's/^berth-vm: boot unit started, uptime ([0-9.]+)s.*/\1/p' "$out/serial.log" | head -1)
echo "vm: $node timings: image $((t_image - t_start))s, payload $((t_payload - t_image))s, qemu $((t_done - t_boot))s" \
  "(boot unit after ${vm_booted_after:-?}s, guest uptime ${uptime:-?}s;" \
  "$(awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}' "$out/timings.txt" 2>/dev/null))" >&2

lines=()
for d in $drivers; do
  if [ "$critest" = 1 ]; then
    lines+=("critest ($node, $d): $(sed 's/^critest: //' "$out/critest-$d.txt" 2>/dev/null || echo "no result")")
  else
    lines+=("critest ($node, $d): not run (BERTH_VM_CRITEST=0)")
  fi
  if [ "$recovery" = 1 ]; then
    lines+=("recovery ($node, $d): $(sed 's/^recovery: //' "$out/recovery-$d.txt" 2>/dev/null || echo "no result")")
  else
    lines+=("recovery ($node, $d): not run (BERTH_VM_RECOVERY=0)")
  fi
done
if [ "$systemd" = 1 ]; then
  lines+=("systemd ($node): $(sed 's/^systemd: //' "$out/systemd-summary.txt" 2>/dev/null || echo "no result")")
else
  lines+=("systemd ($node): not run (BERTH_VM_SYSTEMD=0)")
fi
[ ! -s "$out/unit-leaks.txt" ] || lines+=("units ($node): $(cat "$out/unit-leaks.txt")")
printf '%s\n' "${lines[@]}" >"$out/result.txt"
cat "$out/result.txt"
[ "$rc" -eq 0 ] && [ "$guest_rc" = 0 ]
