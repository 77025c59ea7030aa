#!/usr/bin/env bash
# Finds and removes what a test run left behind on the host.
#   hack/leaks.sh shm                     print the ids of the host's SysV shm segments
#   hack/leaks.sh clean WORK SHM_BEFORE   remove what a run under WORK left: processes, mounts, shm segments created
#                                         since SHM_BEFORE (critest's HostIpc specs make them with ipcmk). Exits 1 when
#                                         berth itself leaked a process or mount (shm segments are critest's own).
set -uo pipefail
shm_ids() { awk 'NR>1 && $2 ~ /^[0-9]+$/ {print $2}' /proc/sysvipc/shm | sort; }

case "${1:-}" in
shm) shm_ids ;;
clean)
  work=${2:?work dir}; before=${3:-}
  leaked=0
  # Every process whose command line names the work dir, except this script (and its subshells) and its caller.
  pids=
  for p in $(pgrep -f -- "$work"); do
    [ "$p" = "$PPID" ] && continue
    grep -qa 'hack/leaks.sh' "/proc/$p/cmdline" 2>/dev/null && continue
    [ -e "/proc/$p" ] && pids="$pids $p"
  done
  if [ -n "$pids" ]; then
    echo "leak: processes still running from $work: $(echo $pids)" >&2
    ps -o pid,args -p $(echo $pids | tr ' ' ,) >&2 || true
    kill -KILL $pids 2>/dev/null
    leaked=1
  fi
  mounts=$(awk -v w="$work" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  if [ -n "$mounts" ]; then
    echo "leak: mounts left under $work:" >&2
    echo "$mounts" >&2
    for m in $mounts; do umount -l "$m" 2>/dev/null; done
    leaked=1
  fi
  for id in $(comm -13 <(echo "$before") <(shm_ids)); do ipcrm -m "$id" 2>/dev/null; done
  exit $leaked
  ;;
*) echo "usage: $0 shm | clean WORK SHM_BEFORE" >&2; exit 2 ;;
esac
