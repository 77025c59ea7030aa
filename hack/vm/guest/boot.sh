#!/bin/bash
# Installed in the node image as /usr/local/sbin/berth-vm-boot (berth-vm.service). Mounts the share disk, runs its
# run.sh with the output on the serial console and in out/guest.log, writes out/exit-code and powers off. The host
# (hack/vm/run.sh) waits for qemu to exit and reads out/ back from the disk.
set -uo pipefail
console=/dev/ttyS0
say() { echo "berth-vm: $*" >"$console"; }
finish() {
  sync
  umount /share 2>/dev/null
  say "done rc=$1"
  systemctl --no-block -i poweroff # -i: no inhibitor check over D-Bus (there is no bus)
  exit 0
}

say "boot unit started, uptime $(cut -d' ' -f1 /proc/uptime)s"
# udev may announce the disk after multi-user.target.
for _ in $(seq 300); do [ -b /dev/vdb ] && break; sleep 0.2; done
mkdir -p /share
if ! timeout 60 mount -t ext4 /dev/vdb /share; then say "cannot mount the share disk /dev/vdb"; finish 125; fi
mkdir -p /share/out
if [ ! -f /share/run.sh ]; then say "no run.sh on the share disk"; echo 125 >/share/out/exit-code; finish 125; fi
# The host's budget minus a margin, so that a guest-side timeout still leaves time to write the results back.
limit=$(cat /share/timeout 2>/dev/null || echo 3600)
(cd /share && timeout --kill-after=30 "$limit" bash /share/run.sh) 2>&1 | tee /share/out/guest.log >"$console"
rc=${PIPESTATUS[0]}
echo "$rc" >/share/out/exit-code
finish "$rc"
