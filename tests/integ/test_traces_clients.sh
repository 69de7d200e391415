#!/usr/bin/env bash
# test_traces_clients.sh: shoal server's span ingest driven by real tracers from npm (the
# OpenTelemetry JS SDK with its OTLP/HTTP exporters, JSON and protobuf, and zipkin-js), queried
# back with Zipkin's API. The clients are pinned by tests/integ/traces-client/package-lock.json
# and installed with `npm ci` into its node_modules (git-ignored) on first run. SKIPs (77)
# without node or npm. Usage: test_traces_clients.sh SHOAL_BINARY
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/traces-client"

for tool in node npm python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: '$tool' not found (scripts/install-deps.sh installs it)" >&2
        exit 77
    fi
done
if [ ! -d "$dir/node_modules/@opentelemetry/exporter-trace-otlp-proto" ] ||
    [ ! -d "$dir/node_modules/zipkin-transport-http" ]; then
    log=$(mktemp)
    if ! (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
        echo "FAIL: npm ci in $dir failed (is the npm registry reachable?):" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
exec timeout 300 python3 "$(dirname "$0")/traces_test.py" "$1" test_client_otel_and_zipkin_js
