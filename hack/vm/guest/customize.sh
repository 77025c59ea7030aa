#!/bin/bash
# mmdebstrap --customize-hook for the node images: customize.sh ROOTFS GUESTDIR. Makes the rootfs boot straight into
# the payload unit, with nothing else on the way.
set -euo pipefail
root=$1 guest=$2

printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"$root/etc/fstab" # pass 0: the root is a fresh snapshot each boot
echo berth-node >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 berth-node\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# Not the build host's resolver: the VM has no network; pods copy this file.
printf 'nameserver 127.0.0.1\n' >"$root/etc/resolv.conf"
chroot "$root" passwd -d root >/dev/null

install -m 0755 "$guest/boot.sh" "$root/usr/local/sbin/berth-vm-boot"
install -m 0644 "$guest/berth-vm.service" "$root/etc/systemd/system/berth-vm.service"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/berth-vm.service "$root/etc/systemd/system/multi-user.target.wants/berth-vm.service"
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"

# Units a throw-away test node does not need; under TCG every process costs ~0.4 s.
for u in e2scrub_reap.service e2scrub_all.timer getty.target getty-static.service getty@tty1.service \
  serial-getty@ttyS0.service console-getty.service systemd-timesyncd.service apt-daily.timer \
  apt-daily-upgrade.timer dpkg-db-backup.timer fstrim.timer logrotate.timer man-db.timer \
  systemd-tmpfiles-clean.timer systemd-pstore.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$u"
done
