#!/bin/bash
# The systemd leg of a node VM (guest/run.sh runs it from the share disk's berth/ dir, after critest): berth-installer
# on the VM's real systemd, as on a node.
#
#   install   berth-installer install --host-root / writes berthd.service (Type=notify) and starts it; the unit is
#             active only once berthd answers CRI calls, and its watchdog is fed
#   restart   `systemctl restart berthd` leaves a running container running (KillMode=process), reported RUNNING
#   kill -9   systemd restarts a killed berthd (Restart=on-failure); the container runs on, reported RUNNING
#   SIGHUP    berthd neither dies nor is restarted; it reloads its configuration
#   switch    --switch points a stand-in kubelet.service at berth and restarts it (the VM has no kubelet binary: the
#             stand-in /usr/local/bin/kubelet records its flags and config and asks its endpoint for the runtime's
#             name; fakeapi (hack/cmd/fakeapi) is the Kubernetes API: a cordoned, drained node that takes labels)
#   uninstall after the pod is removed (the node's drain): every file under /etc, /usr/local, /opt, /var/lib/kubelet
#             and /usr/lib/systemd/system is as before install, byte for byte with its mode, owner and mtime; no
#             berth process, unit, cgroup or mount is left but berthd's own data (/var/lib/berth, /run/berth, which
#             uninstall keeps, with the shared /run/berth/pods mount berthd makes for its next start)
#
# Writes out/systemd.log and out/systemd-summary.txt: "systemd: install ok, restart ok, kill -9 ok, sighup ok,
# switch ok, uninstall byte-identical" or "systemd: FAILED at STEP: why". Environment (set by run.sh):
# BERTH_TOOLS (crictl, berth-installer, fakeapi, CNI plugins), BERTH_TESTBED_DIR.
set -uo pipefail
share=/share
out=$share/out
tools=${BERTH_TOOLS:-$share/tools}
work=/tmp/berth-systemd-leg
sock=/run/berth/berth.sock
node_name=berth-node
crictl=("$tools/bin/crictl" --config /dev/null --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 60s)
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
step=setup
done_steps=()
fakeapi_pid=
sampler=
own_registry=

say() { echo "systemd leg: $*"; }
fail() {
  say "FAILED at $step: $*"
  journalctl -u berthd.service -n 30 --no-pager -o cat 2>/dev/null | sed 's/^/  berthd: /'
  echo "systemd: FAILED at $step: $*" >"$out/systemd-summary.txt"
  exit 1
}
# ok STEP [DETAIL]: STEP goes into the summary line, DETAIL into the log.
ok() {
  done_steps+=("$1")
  say "$1${2:+ ($2)}"
}
prop() { systemctl show -p "$2" --value "$1"; }
# wait_until SECONDS CMD...: runs CMD every 0.5 s until it succeeds. CMD's arguments are expanded once: what must be
# read anew each time goes in a function.
wait_until() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
}
answers() { timeout 30 "${crictl[@]}" version >/dev/null 2>&1; }
ctr_state() { timeout 60 "${crictl[@]}" inspect -o go-template --template '{{.status.state}}' "$ctr" 2>&1; }
# workload_ok: the container's process is the one started at first, and berthd reports it RUNNING.
workload_ok() {
  local pid
  pid=$(pgrep -f "^sleep $sleep_for\$") || fail "the container's process is gone"
  [ "$pid" = "$workload_pid" ] || fail "the container's process is $pid, was $workload_pid"
  local st
  st=$(ctr_state)
  [ "$st" = CONTAINER_RUNNING ] || fail "container reported $st"
}

cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  [ -n "$fakeapi_pid" ] && kill "$fakeapi_pid" 2>/dev/null
  # The node's own files this leg made before install (they are in the before/after snapshots).
  systemctl stop kubelet.service 2>/dev/null
  rm -rf /etc/systemd/system/kubelet.service /etc/default/kubelet /var/lib/kubelet /usr/local/bin/kubelet \
    /etc/systemd/system/berthd.service.d /etc/berth /run/secrets/kubernetes.io
  systemctl daemon-reload 2>/dev/null
  [ -n "$own_registry" ] && hack/testbed.sh stop >/dev/null 2>&1
}
trap cleanup EXIT

# snapshot: every entry of the dirs the installer touches: type, mode, owner, and for files size, mtime and sha256,
# for links the target. Directories without times or sizes: entries come and go in them.
snapshot_dirs=(/etc /usr/local /opt /var/lib/kubelet /usr/lib/systemd/system)
snapshot() {
  find "${snapshot_dirs[@]}" -xdev -type d -printf '%p d %#m %U:%G\n' 2>/dev/null
  find "${snapshot_dirs[@]}" -xdev -type l -printf '%p l %U:%G %l\n' 2>/dev/null
  find "${snapshot_dirs[@]}" -xdev -type f -printf '%p f %#m %U:%G %s %T@\n' 2>/dev/null
  find "${snapshot_dirs[@]}" -xdev -type f -print0 2>/dev/null | xargs -0 -r sha256sum | awk '{print $2, "sha256", $1}'
}
# shadow_tools_view: when the installer made the userns group, the host's groupadd and groupdel rewrote /etc/group and
# /etc/gshadow (their content comes back byte for byte, their mtime does not) and left their own backups of the
# previous version in /etc/group- and /etc/gshadow-: compare without those. The installer must not put back whole
# files that other tools may have changed meanwhile.
shadow_tools_view() {
  if [ "$group_made" = 1 ]; then
    grep -vE '^/etc/(group|gshadow)- ' | sed -E 's#^(/etc/(group|gshadow) f [^ ]+ [^ ]+ [^ ]+) [^ ]+$#\1#'
  else
    cat
  fi
}
group_made=0

rm -rf "$work"
mkdir -p "$work/payload/bin" "$work/payload/cni" "$work/logs" "$work/api"
: >"$out/systemd.log"
exec > >(tee -a "$out/systemd.log") 2>&1

# --- the node before berth: a registry for its images, a kubelet on another runtime, an API server ---
source hack/lib.sh
testbed_up "$work/testbed.log" || fail "test bed did not start"
mkdir -p /etc/berth/berth.d
hack/testbed.sh mirrors-toml >/etc/berth/berth.d/10-mirrors.toml
# The installer's payload, as its image has it (the CNI plugins are files, not links).
cp "$share/berth/bin/berthd" "$share/berth/bin/berth-monitor" "$work/payload/bin/"
cp "$tools"/cni/* "$work/payload/cni/"

mkdir -p /var/lib/kubelet
cat >/var/lib/kubelet/config.yaml <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The kubelet of this node before berth.
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
YAML
cat >/etc/default/kubelet <<'ENV'
KUBELET_EXTRA_ARGS=--container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10.1
ENV
cat >/usr/local/bin/kubelet <<SH
#!/bin/sh
# Stand-in kubelet: records its flags and its config's endpoint, asks the endpoint the flags win with for the
# runtime's name, and stays up.
endpoint= config=
for a in "\$@"; do
  case \$a in --container-runtime-endpoint=*) endpoint=\${a#*=} ;; --config=*) config=\${a#*=} ;; esac
done
config_endpoint=\$(sed -n 's/^containerRuntimeEndpoint: *//p' "\$config")
runtime=\$(timeout 20 $tools/bin/crictl --config /dev/null --runtime-endpoint "\${endpoint:-\$config_endpoint}" --timeout 10s version 2>/dev/null | sed -n 's/^RuntimeName: *//p')
echo "flags=\$endpoint config=\$config_endpoint runtime=\${runtime:-none}" >>/run/kubelet-standin.log
exec sleep infinity
SH
chmod 0755 /usr/local/bin/kubelet
cat >/etc/systemd/system/kubelet.service <<'UNIT'
[Unit]
Description=kubelet stand-in (berth's systemd VM leg)
[Service]
EnvironmentFile=-/etc/default/kubelet
ExecStart=/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml $KUBELET_EXTRA_ARGS
Restart=always
UNIT
# A node admin's drop-in: a shorter watchdog, so that this leg sees keep-alives arrive.
mkdir -p /etc/systemd/system/berthd.service.d
printf '[Service]\nWatchdogSec=20s\n' >/etc/systemd/system/berthd.service.d/10-watchdog.conf
rm -f /run/kubelet-standin.log
systemctl daemon-reload && systemctl start kubelet.service || fail "the stand-in kubelet did not start"
wait_until 30 grep -q 'runtime=none' /run/kubelet-standin.log 2>/dev/null || fail "the stand-in kubelet recorded nothing"

"$tools/bin/fakeapi" -node "$node_name" -dir "$work/api" 2>"$work/fakeapi.log" &
fakeapi_pid=$!
wait_until 30 test -s "$work/api/addr" || fail "fakeapi did not start: $(cat "$work/fakeapi.log")"
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$work/api/ca.crt" /run/secrets/kubernetes.io/serviceaccount/ca.crt
echo vm-token >/run/secrets/kubernetes.io/serviceaccount/token
addr=$(cat "$work/api/addr")
export KUBERNETES_SERVICE_HOST=${addr%:*} KUBERNETES_SERVICE_PORT=${addr##*:} NODE_NAME=$node_name
installer=("$tools/bin/berth-installer")
snapshot | sort >"$work/before.txt"

# --- install: active only once berthd answers ---
step=install
# Samples of the unit's state, each followed by whether berthd answers: "active" must never come before an answer.
(while :; do
  s=$(prop berthd.service ActiveState)/$(prop berthd.service SubState)
  if answers; then echo "$s yes"; else echo "$s no"; fi
  sleep 0.2
done) >"$work/samples.txt" 2>/dev/null &
sampler=$!
t0=$SECONDS
had_group=$(getent group berth-userns)
timeout 300 "${installer[@]}" install --host-root / --payload "$work/payload" || fail "berth-installer install failed"
took=$((SECONDS - t0))
[ -z "$had_group" ] && getent group berth-userns >/dev/null && group_made=1
kill $sampler
wait $sampler 2>/dev/null
sampler=
[ "$(prop berthd.service ActiveState)/$(prop berthd.service SubState)" = active/running ] || fail "berthd.service is $(prop berthd.service ActiveState) after install"
answers || fail "berthd does not answer after install"
[ "$(prop berthd.service Type)" = notify ] || fail "berthd.service Type=$(prop berthd.service Type)"
grep -E '^active/.* no$' "$work/samples.txt" && fail "berthd.service was active before berthd answered"
verify=$(systemd-analyze verify /etc/systemd/system/berthd.service 2>&1) || fail "systemd-analyze verify: $verify"
# systemd logs "Started" when READY=1 arrives; berthd logs its readiness just before it sends it.
journal_order() {
  order=$(journalctl -u berthd.service -b --no-pager -o cat | sed -nE 's/.*msg="berthd serving".*/serving/p;
    s/.*msg="answering on its socket: READY=1 to systemd".*/ready/p; s/^Started .*/started/p' | paste -sd' ')
  [ "$order" = "serving ready started" ]
}
wait_until 10 journal_order || fail "the journal shows [$order], not serving, READY=1, then systemd's Started"
ok "install ok" "${took}s; $(grep -c '^activating' "$work/samples.txt") samples activating, none active before an answer"

timeout 300 "${crictl[@]}" pull "$image" >/dev/null || fail "crictl pull $image"
cat >"$work/pod.json" <<JSON
{"metadata": {"name": "systemd-leg", "namespace": "default", "uid": "systemd-leg-$$", "attempt": 0},
 "log_directory": "$work/logs",
 "linux": {"security_context": {"namespace_options": {"network": 2}}}}
JSON
sleep_for=86399
cat >"$work/ctr.json" <<JSON
{"metadata": {"name": "sleeper"}, "image": {"image": "$image"}, "command": ["sleep", "$sleep_for"], "log_path": "sleeper.log"}
JSON
pod=$(timeout 300 "${crictl[@]}" runp "$work/pod.json") || fail "crictl runp"
ctr=$(timeout 120 "${crictl[@]}" create "$pod" "$work/ctr.json" "$work/pod.json") || fail "crictl create"
timeout 120 "${crictl[@]}" start "$ctr" >/dev/null || fail "crictl start"
wait_until 60 pgrep -f "^sleep $sleep_for\$" >/dev/null || fail "the container's process did not appear"
workload_pid=$(pgrep -f "^sleep $sleep_for\$")
workload_ok

step=watchdog
# The watchdog: WatchdogTimestamp moves with every WATCHDOG=1 (the drop-in's 20 s: one every 10 s).
wd0=$(prop berthd.service WatchdogTimestampMonotonic)
[ "$(prop berthd.service WatchdogUSec)" = 20s ] || fail "WatchdogUSec=$(prop berthd.service WatchdogUSec)"
pinged() { [ "$(prop berthd.service WatchdogTimestampMonotonic)" != "$wd0" ]; }
wait_until 30 pinged || fail "no watchdog keep-alive in 30s"

# --- restart ---
step=restart
pid0=$(prop berthd.service MainPID)
timeout 300 systemctl restart berthd.service || fail "systemctl restart"
pid1=$(prop berthd.service MainPID)
[ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] || fail "MainPID $pid0 -> $pid1"
answers || fail "berthd does not answer after restart"
workload_ok
ok "restart ok"

# --- kill -9 ---
step="kill -9"
restarts=$(prop berthd.service NRestarts)
kill -9 "$pid1"
back() { p=$(prop berthd.service MainPID); [ "$p" != 0 ] && [ "$p" != "$pid1" ] && [ "$(prop berthd.service ActiveState)" = active ]; }
wait_until 120 back || fail "systemd did not bring berthd back ($(prop berthd.service ActiveState)/$(prop berthd.service SubState))"
[ "$(prop berthd.service NRestarts)" = $((restarts + 1)) ] || fail "NRestarts $restarts -> $(prop berthd.service NRestarts)"
answers || fail "berthd does not answer after its restart"
workload_ok
ok "kill -9 ok"

# --- SIGHUP ---
step=SIGHUP
pid2=$(prop berthd.service MainPID)
restarts=$(prop berthd.service NRestarts)
kill -HUP "$pid2"
sleep 3
[ "$(prop berthd.service MainPID)" = "$pid2" ] && [ "$(prop berthd.service NRestarts)" = "$restarts" ] ||
  fail "berthd was restarted (MainPID $pid2 -> $(prop berthd.service MainPID))"
[ "$(prop berthd.service ActiveState)" = active ] && answers || fail "berthd does not answer after SIGHUP"
hup_logged() { journalctl -u berthd.service -b --no-pager -o cat | grep -q 'reloaded'; }
wait_until 10 hup_logged || fail "berthd did not log the reload on SIGHUP"
workload_ok
ok "sighup ok"

# --- switch ---
step=switch
timeout 300 "${installer[@]}" install --host-root / --payload "$work/payload" --switch || fail "berth-installer install --switch failed"
grep -qx 'containerRuntimeEndpoint: unix:///run/berth/berth.sock' /var/lib/kubelet/config.yaml || fail "config.yaml: $(cat /var/lib/kubelet/config.yaml)"
grep -q -- '--container-runtime-endpoint=unix:///run/berth/berth.sock' /etc/default/kubelet || fail "/etc/default/kubelet: $(cat /etc/default/kubelet)"
want='flags=unix:///run/berth/berth.sock config=unix:///run/berth/berth.sock runtime=berth'
wait_until 60 grep -qxF "$want" /run/kubelet-standin.log || fail "the kubelet recorded: $(tail -1 /run/kubelet-standin.log)"
grep -q '"berth.dev/runtime":"installed"' "$work/api/labels.json" || fail "node labels $(cat "$work/api/labels.json")"
grep -qx 'cgroup_driver = "cgroupfs"' /etc/berth/berth.d/50-installer.toml || fail "the drop-in lacks the kubelet's cgroupDriver"
workload_ok
ok "switch ok"

# --- uninstall, after the node's drain ---
step=uninstall
timeout 120 "${crictl[@]}" stopp "$pod" >/dev/null || fail "crictl stopp"
timeout 120 "${crictl[@]}" rmp "$pod" >/dev/null || fail "crictl rmp"
timeout 300 "${installer[@]}" uninstall --host-root / || fail "berth-installer uninstall failed"
want='flags=unix:///run/containerd/containerd.sock config=unix:///run/containerd/containerd.sock runtime=none'
kubelet_back() { [ "$(tail -1 /run/kubelet-standin.log)" = "$want" ]; }
wait_until 60 kubelet_back || fail "the kubelet recorded: $(tail -1 /run/kubelet-standin.log)"
[ "$(cat "$work/api/labels.json")" = '{}' ] || fail "node labels left: $(cat "$work/api/labels.json")"
getent group berth-userns >/dev/null && [ "$group_made" = 1 ] && fail "the group the installer made is left"
snapshot | sort | shadow_tools_view >"$work/after.txt"
shadow_tools_view <"$work/before.txt" >"$work/before-view.txt"
if ! diff "$work/before-view.txt" "$work/after.txt" >"$work/diff.txt"; then
  head -20 "$work/diff.txt"
  fail "$(grep -c '^[<>]' "$work/diff.txt") snapshot lines differ"
fi
procs=$(pgrep -a 'berthd|berth-monitor') && fail "berth processes left: $procs"
[ "$(prop berthd.service LoadState)" = not-found ] || fail "berthd.service is $(prop berthd.service LoadState)"
cgroups=$(find /sys/fs/cgroup -name "*$pod*" -o -name 'berthd.service' | head -5)
[ -z "$cgroups" ] || fail "cgroups left: $cgroups"
mounts=$(awk '$5 ~ /berth/ && $5 != "/run/berth/pods" {print $5}' /proc/self/mountinfo)
[ -z "$mounts" ] || fail "mounts left: $mounts"
groups="the userns group was the node's"
[ "$group_made" = 1 ] && groups="the installer made and deleted the userns group; /etc/group and /etc/gshadow content identical"
ok "uninstall byte-identical" "$(wc -l <"$work/before.txt") snapshot entries; $groups"

step=summary
line="systemd: $(printf '%s, ' "${done_steps[@]}" | sed 's/, $//')"
echo "$line" >"$out/systemd-summary.txt"
say "$line"
