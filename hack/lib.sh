# Shared plumbing of the hack scripts that run a test berthd (critest.sh, installer-e2e.sh, bench/lib.sh); sourced
# from the repository root after tools=$(hack/tools.sh).

# testbed_up LOG: starts the loopback test bed, or reuses one someone else started (another run, a developer) and
# leaves it running: own_registry is 1 only when this run started it and must stop it.
testbed_up() {
  own_registry=
  curl -fsS -o /dev/null "http://127.0.0.1:${BERTH_REGISTRY_PORT:-5000}/v2/" 2>/dev/null || own_registry=1
  hack/testbed.sh start >"$1" 2>&1 || { cat "$1" >&2; return 1; }
}

# start_test_berthd DIR LOG [LEVEL]: runs bin/berthd on DIR (root, state and socket below it; CNI configs from DIR/net.d,
# plugins from the tools dir; the public registry hosts mapped to the test bed), logging to LOG, and waits until it
# serves the CRI. Sets berthd_pid and berthd_sock. BERTH_CGROUP_DRIVER, when set, is its cgroup_driver (node VMs,
# where systemd is PID 1, test each driver on cgroup v2 with it).
start_test_berthd() {
  local dir=$1 log=$2 level=${3:-info}
  ensure_userns_group
  mkdir -p "$dir/etc/berth.d" "$dir/net.d"
  berthd_sock=$dir/berth.sock
  cat >"$dir/etc/berth.toml" <<TOML
root_dir = "$dir/root"
state_dir = "$dir/state"
listen = "$berthd_sock"
${BERTH_CGROUP_DRIVER:+cgroup_driver = \"$BERTH_CGROUP_DRIVER\"}
[log]
level = "$level"
[cni]
conf_dir = "$dir/net.d"
bin_dirs = ["$tools/cni"]
TOML
  hack/testbed.sh mirrors-toml >"$dir/etc/berth.d/10-mirrors.toml"
  bin/berthd --config "$dir/etc/berth.toml" >"$log" 2>&1 &
  berthd_pid=$!
  for _ in $(seq 150); do
    "$tools/bin/crictl" --config /dev/null --runtime-endpoint "unix://$berthd_sock" --timeout 2s version >/dev/null 2>&1 && return 0
    kill -0 "$berthd_pid" 2>/dev/null || { echo "berthd exited at start, see $log:" >&2; tail -20 "$log" >&2; return 1; }
    sleep 0.2
  done
  echo "berthd does not answer on $berthd_sock, see $log" >&2
  return 1
}

# stop_test_berthd DIR: stops the berthd start_test_berthd ran on DIR, if it runs, and unmounts DIR/state/pods, the
# shared mount berthd makes on purpose and keeps for its next start (not a leak).
stop_test_berthd() {
  if [ -n "${berthd_pid:-}" ] && kill -0 "$berthd_pid" 2>/dev/null; then
    kill -TERM "$berthd_pid"; wait "$berthd_pid" 2>/dev/null || true
  fi
  umount "$1/state/pods" 2>/dev/null || true
}

# ensure_userns_group: creates berth's userns_group (its default, berth-userns) as a system group when the host lacks
# it: berthd makes its shared state dirs 0710 to it and advertises user namespaces only with it.
ensure_userns_group() {
  getent group berth-userns >/dev/null 2>&1 && return 0
  if command -v groupadd >/dev/null; then
    timeout 30 groupadd --system berth-userns && return 0
  fi
  # A minbase node VM has no groupadd (passwd): the highest free system gid, as groupadd --system picks.
  local gid=999
  while getent group "$gid" >/dev/null; do gid=$((gid - 1)); done
  echo "berth-userns:x:$gid:" >>/etc/group
}
