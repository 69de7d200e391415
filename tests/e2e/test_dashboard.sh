#!/usr/bin/env bash
# test_dashboard.sh: the dashboard end to end (docs/dashboard.md): examples/hello under
# `shoal up`, the session/CSRF API contract (dashboard_test.py), then Debian's chromium headless
# driven by playwright-core (dashboard_test.mjs, pinned by package-lock.json): log in, every
# view with no console error, the map's greeter -> names, a scale that `shoal ps` sees, a config
# rollback that takes effect, axe-core. Screenshots go to $SHOAL_BINARY_DIR/e2e-artifacts.
# SKIP (77) when node, npm, chromium or python3 is missing, or the binary was built without
# the dashboard. Usage: test_dashboard.sh SHOAL_BINARY
set -euo pipefail
shoal=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
dir="$(cd "$(dirname "$0")" && pwd)"
bindir=$(dirname "$shoal")

for tool in node npm python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: '$tool' not found (scripts/install-deps.sh installs it)"
        exit 77
    fi
done
chromium=${SHOAL_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ]; then
    echo "SKIP: chromium not found (scripts/install-deps.sh installs Debian's chromium)"
    exit 77
fi
if [ ! -f "$bindir/web/app.js" ]; then
    echo "SKIP: this build has no dashboard ($bindir/web/app.js is missing: node/npm were missing at build time)"
    exit 77
fi
cd "$dir"
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/axe-core ]; then
    log=$(mktemp)
    if ! timeout 300 npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
        echo "FAIL: npm ci in $dir failed (is the npm registry reachable?):" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
artifacts=${SHOAL_BINARY_DIR:-$bindir}/e2e-artifacts
mkdir -p "$artifacts"
export SHOAL_CHROMIUM="$chromium" SHOAL_E2E_ARTIFACTS="$artifacts"
exec timeout 300 python3 dashboard_test.py "$shoal"
