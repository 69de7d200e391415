#!/usr/bin/env bash
# build-web.sh: builds the dashboard (web/) into OUT_DIR with esbuild: index.html, app.js,
# app.css and their .gz. Called by CMake at build time (the shoal_ui_assets step). When node or
# npm is missing, or the npm install fails (offline), it says so, leaves OUT_DIR empty and exits
# 0: the binary then serves a page saying the dashboard was not built.
# Usage: build-web.sh WEB_SOURCE_DIR OUT_DIR
set -uo pipefail
src=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build-web: '$tool' not found: the dashboard is not built (scripts/install-deps.sh installs it)" >&2
        exit 0
    fi
done
cd "$src" || exit 0
# node_modules lives in web/ (git-ignored), pinned by package-lock.json; installed once.
if [ ! -x node_modules/.bin/esbuild ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log=$(mktemp)
    if ! timeout 300 npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
        echo "build-web: npm ci in $src failed; the dashboard is not built:" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 0
    fi
    rm -f "$log"
fi
if ! node build.mjs "$out"; then
    echo "build-web: the dashboard build failed" >&2
    rm -rf "$out"
    exit 1
fi
