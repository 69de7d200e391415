#!/usr/bin/env bash
# test_consul_client.sh: shoal server's Consul-compatible API driven by the real npm `consul`
# client (tests/integ/consul-client, version pinned by its package-lock.json). Installs the
# client into that directory's node_modules (git-ignored) on first run, then runs
# consul_client_test.js against the binary. Fails, never skips, without node or npm: both come
# from scripts/install-deps.sh. Usage: test_consul_client.sh SHOAL_BINARY
set -euo pipefail
shoal=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
dir="$(cd "$(dirname "$0")" && pwd)/consul-client"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "FAIL: '$tool' not found; run scripts/install-deps.sh (it installs Node.js and npm)" >&2
        exit 1
    fi
done
cd "$dir"
if [ ! -d node_modules/consul ]; then
    if [ -f package-lock.json ]; then
        install=(ci)
    else
        install=(install)
    fi
    log=$(mktemp)
    if ! timeout 300 npm "${install[@]}" --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
        echo "FAIL: npm ${install[*]} in $dir failed (is the npm registry reachable?):" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
exec timeout 180 node consul_client_test.js "$shoal"
