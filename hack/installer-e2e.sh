#!/usr/bin/env bash
# "berth installs berth": builds the release (make release: both architectures' tarballs and the installer index)
# with the index pushed to the loopback test-bed registry, starts a fresh berthd on temporary dirs and socket, and has
# it pull the index, take this node's image and run `berth-installer --version` in a pod shaped like the DaemonSet's
# (host network and PID, privileged) through crictl.
# Environment: BERTH_REGISTRY_PORT (5105) and BERTH_TESTBED_DIR (/tmp/berth-testbed-inst) keep its registry apart
# from critest's; BERTH_INSTALLER_E2E_OUT (_output/installer-e2e) keeps berthd.log, crictl.log and the release
# (release/, release.log). The last line is the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export BERTH_REGISTRY_PORT=${BERTH_REGISTRY_PORT:-5105}
export BERTH_TESTBED_DIR=${BERTH_TESTBED_DIR:-/tmp/berth-testbed-inst}
out=${BERTH_INSTALLER_E2E_OUT:-$root/_output/installer-e2e}
mkdir -p "$out"
rm -f "$out"/{berthd.log,testbed.log,crictl.log}
start=$SECONDS

tools=$(hack/tools.sh)
source hack/lib.sh
make --no-print-directory build installer >/dev/null
version=$(bin/berth-installer --version | awk '{print $2}')
image=127.0.0.1:$BERTH_REGISTRY_PORT/berth/installer:$version
work=$(mktemp -d /tmp/berth-installer-e2e.XXXXXX)
sock=$work/berth.sock # start_test_berthd's socket
crictl=("$tools/bin/crictl" --config /dev/null --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 60s)
berthd_pid=
pod=
result=
own_registry=
shm_before=$(hack/leaks.sh shm)

cleanup() {
  local rc=$?
  if [ -n "$pod" ]; then
    "${crictl[@]}" stopp "$pod" >/dev/null 2>&1 || true
    "${crictl[@]}" rmp "$pod" >/dev/null 2>&1 || true
  fi
  stop_test_berthd "$work"
  [ -n "$own_registry" ] && stop_registry
  hack/leaks.sh clean "$work" "$shm_before" || rc=1
  rm -rf "$work"
  [ -n "$result" ] && echo "$result"
  exit $rc
}
trap cleanup EXIT
# stop_registry stops the registry this run started. Not testbed.sh stop: that also removes the /etc/hosts safety net,
# which the test beds of other runs on other ports share.
stop_registry() {
  local pid
  pid=$(cat "$BERTH_TESTBED_DIR/registry.pid" 2>/dev/null) || return 0
  if grep -qa "127.0.0.1:$BERTH_REGISTRY_PORT" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
  fi
  rm -f "$BERTH_TESTBED_DIR/registry.pid"
}
fail() {
  echo "installer-e2e: $*" >&2
  [ -s "$out/crictl.log" ] && tail -n 5 "$out/crictl.log" >&2
  exit 1
}

testbed_up "$out/testbed.log" || fail "test bed did not start"
# The release's installer index (linux/amd64 and linux/arm64), pushed to this run's registry.
BERTH_RELEASE_REGISTRY=127.0.0.1:$BERTH_REGISTRY_PORT BERTH_RELEASE_OUT=$out/release \
  make --no-print-directory -s release VERSION="$version" >"$out/release.log" 2>&1 || { tail -n 5 "$out/release.log" >&2; fail "make release failed"; }
cp "$out/release/installer-image.txt" "$out/push.txt"

# A berthd of its own: temporary dirs, the public registries mapped to the test bed (the pause image), and no pod
# network (the pod uses the host's, like the DaemonSet). 127.0.0.1:PORT needs no mapping: berth talks plain HTTP to
# loopback registries.
mkdir -p "$work/logs"
start_test_berthd "$work" "$out/berthd.log" debug || fail "berthd did not start"

"${crictl[@]}" pull "$image" >/dev/null 2>>"$out/crictl.log" || fail "crictl pull $image failed"
# From the two-platform index, berth takes this node's image.
arch=$("${crictl[@]}" inspecti -o go-template --template '{{.info.imageSpec.architecture}}' "$image")
[ "$arch" = "$(go env GOARCH)" ] || fail "berth pulled the $arch image of the index on a $(go env GOARCH) node"
cat >"$work/pod.json" <<JSON
{"metadata": {"name": "berth-installer-e2e", "namespace": "berth-system", "uid": "installer-e2e-$$", "attempt": 0},
 "log_directory": "$work/logs",
 "linux": {"security_context": {"privileged": true, "namespace_options": {"network": 2, "pid": 2, "userns_options": {"mode": 2}}}}}
JSON
cat >"$work/container.json" <<JSON
{"metadata": {"name": "installer"}, "image": {"image": "$image"}, "args": ["--version"], "log_path": "installer.log",
 "linux": {"security_context": {"privileged": true, "namespace_options": {"network": 2, "pid": 2, "userns_options": {"mode": 2}}}}}
JSON
pod=$("${crictl[@]}" runp "$work/pod.json" 2>>"$out/crictl.log") || fail "crictl runp failed"
ctr=$("${crictl[@]}" create "$pod" "$work/container.json" "$work/pod.json" 2>>"$out/crictl.log") || fail "crictl create failed"
"${crictl[@]}" start "$ctr" >/dev/null 2>>"$out/crictl.log" || fail "crictl start failed"
state=
for _ in $(seq 150); do
  state=$("${crictl[@]}" inspect -o go-template --template '{{.status.state}}' "$ctr")
  [ "$state" = CONTAINER_EXITED ] && break
  sleep 0.2
done
[ "$state" = CONTAINER_EXITED ] || fail "container state $state after 30s"
code=$("${crictl[@]}" inspect -o go-template --template '{{.status.exitCode}}' "$ctr")
log=$("${crictl[@]}" logs "$ctr" 2>&1)
if [ "$code" != 0 ] || [ "$log" != "berth-installer $version" ]; then
  fail "berth-installer --version exited $code and printed: $log"
fi
result="installer-e2e: berth pulled the $arch image of the release's index $(cut -d@ -f2 "$out/push.txt" | cut -c1-19) and ran \"$log\" ($((SECONDS - start))s)"
