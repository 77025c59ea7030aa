#!/usr/bin/env bash
# Runs the integration tests (real berthd, CRI client) with the test-bed registry, which they pull from through a
# mirror drop-in (BERTH_TEST_MIRRORS). Extra arguments go to go test, e.g. -run TestKillRecovery.
# With BERTH_PREBUILT=1 (a node VM, no Go toolchain) it runs the test binary BERTH_ITEST_BIN (go test -c) instead,
# with berthd and berth-monitor from bin/ (BERTH_TEST_BIN_DIR); the arguments are then the binary's, e.g.
# -test.run TestKillRecovery -test.v. BERTH_CGROUP_DRIVER, when set, is the test daemons' cgroup_driver.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
ensure_userns_group
own_registry=
curl -fsS -o /dev/null "http://127.0.0.1:${BERTH_REGISTRY_PORT:-5000}/v2/" 2>/dev/null || own_registry=1
hack/testbed.sh start >/dev/null
mirrors=$(mktemp)
trap '[ -n "$own_registry" ] && hack/testbed.sh stop >/dev/null 2>&1; rm -f "$mirrors"' EXIT
hack/testbed.sh mirrors-toml >"$mirrors"
cni=$(hack/tools.sh)/cni
export BERTH_TEST_CGROUP_DRIVER=${BERTH_CGROUP_DRIVER:-}
if [ -n "${BERTH_PREBUILT:-}" ]; then
  [ -x "${BERTH_ITEST_BIN:-}" ] || { echo "integration: BERTH_PREBUILT set but BERTH_ITEST_BIN is no test binary" >&2; exit 1; }
  BERTH_TEST_BIN_DIR=$PWD/bin BERTH_TEST_CNI_BIN=$cni BERTH_TEST_MIRRORS=$mirrors \
    "$BERTH_ITEST_BIN" -test.count=1 -test.timeout 20m "$@"
else
  BERTH_TEST_CNI_BIN=$cni BERTH_TEST_MIRRORS=$mirrors go test -race -count=1 -tags integration -timeout 20m ./cmd/berthd/ "$@"
fi
