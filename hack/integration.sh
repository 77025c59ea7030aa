#!/usr/bin/env bash
# Runs the integration tests (real berthd, CRI client) with the test-bed registry, which they pull from through a
# mirror drop-in (BERTH_TEST_MIRRORS). Extra arguments go to go test, e.g. -run TestKillRecovery.
set -euo pipefail
cd "$(dirname "$0")/.."
own_registry=
curl -fsS -o /dev/null "http://127.0.0.1:${BERTH_REGISTRY_PORT:-5000}/v2/" 2>/dev/null || own_registry=1
hack/testbed.sh start >/dev/null
trap '[ -n "$own_registry" ] && hack/testbed.sh stop >/dev/null 2>&1' EXIT
mirrors=$(mktemp)
trap '[ -n "$own_registry" ] && hack/testbed.sh stop >/dev/null 2>&1; rm -f "$mirrors"' EXIT
hack/testbed.sh mirrors-toml >"$mirrors"
BERTH_TEST_CNI_BIN=$(hack/tools.sh)/cni BERTH_TEST_MIRRORS=$mirrors go test -race -count=1 -tags integration -timeout 20m ./cmd/berthd/ "$@"
