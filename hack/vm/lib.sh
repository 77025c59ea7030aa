# shellcheck shell=bash
# Host-side plumbing of the node VM test bed, sourced by hack/vm/*.sh.

vm_die() { echo "vm: $*" >&2; exit 1; }

vm_cache() { echo "${BERTH_VM_CACHE:-$HOME/.cache/berth/vm}"; }

# vm_mirror prints the Debian archive URL the host's apt uses (never written into the repo): BERTH_VM_MIRROR, else
# the first enabled deb822 stanza (/etc/apt/sources.list.d/*.sources) or one-line `deb` entry (sources.list,
# sources.list.d/*.list) for a main suite, i.e. not -security, -updates or -backports.
vm_mirror() {
  if [ -n "${BERTH_VM_MIRROR:-}" ]; then
    echo "${BERTH_VM_MIRROR%/}"
    return
  fi
  local url
  url=$(
    {
      for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # Paragraph mode: one record per stanza.
        awk 'BEGIN { RS = ""; FS = "\n" }
          {
            types = ""; uris = ""; suites = ""; enabled = "yes"
            for (i = 1; i <= NF; i++) {
              line = $i
              if (line ~ /^[ \t]*#/) continue
              split(line, kv, ":")
              key = tolower(kv[1]); val = substr(line, length(kv[1]) + 2); gsub(/^[ \t]+|[ \t]+$/, "", val)
              if (key == "types") types = val
              else if (key == "uris") uris = val
              else if (key == "suites") suites = val
              else if (key == "enabled") enabled = tolower(val)
            }
            if (enabled == "no" || (" " types " ") !~ / deb /) next
            n = split(suites, s, /[ \t]+/); split(uris, u, /[ \t]+/)
            for (j = 1; j <= n; j++) if (s[j] !~ /-(security|updates|backports)$|\/updates$/) { print u[1]; break }
          }' "$f"
      done
      for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -E -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
          awk '$1 == "deb" && $3 !~ /-(security|updates|backports)$|\/updates$/ { print $2 }'
      done
    } | grep -E '^https?://' | head -1
  ) || true
  [ -n "$url" ] || vm_die "no Debian mirror in the host's apt sources; set BERTH_VM_MIRROR"
  echo "${url%/}"
}

# vm_accel prints the qemu accelerator options to try, one set per line: KVM first only where the CPU has
# virtualisation extensions (here /dev/kvm is a nested PVM that cannot run stock kernels), TCG always.
vm_accel() {
  case "${BERTH_VM_ACCEL:-auto}" in
    tcg) echo "-accel tcg -cpu max" ;;
    kvm) echo "-accel kvm -cpu host" ;;
    auto)
      if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then echo "-accel kvm -cpu host"; fi
      echo "-accel tcg -cpu max"
      ;;
    *) vm_die "BERTH_VM_ACCEL must be auto, tcg or kvm" ;;
  esac
}

# vm_boot IMAGE_DIR SHARE_IMG SERIAL_LOG TIMEOUT_S ACCEL...: boots the image with the share disk as /dev/vdb and no
# network device, and waits for qemu to exit. Fails (status 1, with the serial log's tail) when qemu reports a KVM
# internal error (it then pauses instead of exiting), when the time is up, or when it exits without the guest having
# said "berth-vm: done"; vm_why then says why: kvm, boot (no boot unit within BERTH_VM_BOOT_TIMEOUT, 300 s),
# timeout or early. Sets vm_qemu_pid while qemu runs, for the
# caller's trap, and vm_booted_after: seconds from qemu's start to the boot unit's.
vm_boot() {
  local image=$1 share=$2 serial=$3 limit=$4
  shift 4
  local errlog=$serial.stderr
  : >"$serial"
  # shellcheck disable=SC2068 # the accelerator options are words
  timeout --kill-after=10 "$((limit + 30))" qemu-system-x86_64 -name berth-node $@ -m 4096 -smp 2 \
    -nodefaults -display none -no-reboot -nic none -serial "file:$serial" -monitor none \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 quiet loglevel=4 panic=-1 systemd.show_status=error" \
    -drive "file=$image/disk.img,format=raw,if=virtio,snapshot=on" \
    -drive "file=$share,format=raw,if=virtio" 2>"$errlog" &
  vm_qemu_pid=$!
  local start=$SECONDS why=
  vm_why='' vm_booted_after=''
  while kill -0 "$vm_qemu_pid" 2>/dev/null; do
    if [ -z "$vm_booted_after" ] && grep -q '^berth-vm: boot unit started' "$serial" 2>/dev/null; then
      vm_booted_after=$((SECONDS - start))
    fi
    if grep -q 'KVM internal error' "$errlog" 2>/dev/null; then
      why="qemu reported a KVM internal error (the VM is paused)" vm_why=kvm
    elif [ -z "$vm_booted_after" ] && [ $((SECONDS - start)) -ge "${BERTH_VM_BOOT_TIMEOUT:-300}" ]; then
      why="the boot unit did not start within ${BERTH_VM_BOOT_TIMEOUT:-300}s" vm_why=boot
    elif [ $((SECONDS - start)) -ge "$limit" ]; then
      why="no poweroff within ${limit}s" vm_why=timeout
    fi
    [ -z "$why" ] || break
    sleep 1
  done
  if [ -n "$why" ]; then
    vm_kill_qemu
  else
    wait "$vm_qemu_pid" 2>/dev/null || true
    vm_qemu_pid=
    grep -q '^berth-vm: done rc=' "$serial" || why="qemu exited before the guest was done: $(tail -3 "$errlog" 2>/dev/null)" vm_why=early
  fi
  if [ -n "$why" ]; then
    echo "vm: $why; serial log $serial ends:" >&2
    tail -40 "$serial" >&2
    return 1
  fi
}

# vm_kill_qemu stops the qemu vm_boot started, if it still runs.
vm_kill_qemu() {
  [ -n "${vm_qemu_pid:-}" ] || return 0
  kill -TERM "$vm_qemu_pid" 2>/dev/null
  for _ in $(seq 50); do
    kill -0 "$vm_qemu_pid" 2>/dev/null || break
    sleep 0.1
  done
  # vm_qemu_pid is timeout(1), which passes TERM on to qemu but cannot pass KILL on.
  local children
  children=$(cat /proc/"$vm_qemu_pid"/task/*/children 2>/dev/null)
  # shellcheck disable=SC2086
  kill -KILL $children "$vm_qemu_pid" 2>/dev/null
  wait "$vm_qemu_pid" 2>/dev/null
  vm_qemu_pid=
  return 0
}
