#!/usr/bin/env bash
# A service's own OpenTelemetry SDK spans join the proxy's trace under `shoal up`: a Node service
# (tests/integ/traces-client/traced_service.js) exports over OTLP with its instance's SHOAL_TOKEN.
# The SDK is pinned by traces-client/package-lock.json, installed with `npm ci` on first run.
# SKIPs (77) without node or npm.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/traces-client"
for tool in node npm python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: '$tool' not found (scripts/install-deps.sh installs it)" >&2
        exit 77
    fi
done
if [ ! -d "$dir/node_modules/@opentelemetry/exporter-trace-otlp-proto" ] ||
    [ ! -d "$dir/node_modules/@opentelemetry/core" ]; then
    log=$(mktemp)
    if ! (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
        echo "FAIL: npm ci in $dir failed (is the npm registry reachable?):" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
exec timeout 300 python3 "$(dirname "$0")/traces_up_test.py" "$1" test_own_tracer
