#!/usr/bin/env bash
# test_llhttp_diff.sh: the differential test of tests/vectors/http/ against Node's llhttp.
# Runs tests/vectors/http/llhttp_diff.js, which fails on any disagreement a vector does not
# acknowledge. Skips (exit 77, ctest's SKIP_RETURN_CODE: reported as skipped, never as
# passed) when node is missing or is not the major version the script is
# written for: it drives Node's internal HTTPParser, whose interface is not stable across
# majors (set SHOAL_LLHTTP_ANY_NODE=1 to try another one).
# Usage: test_llhttp_diff.sh SHOAL_BINARY (unused); needs SHOAL_SOURCE_DIR.
set -u
src=${SHOAL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
want_major=20

if ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node not found; the llhttp differential test needs Node.js $want_major"
    exit 77
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" != "$want_major" ] && [ "${SHOAL_LLHTTP_ANY_NODE:-0}" != 1 ]; then
    echo "SKIP: node $major found; llhttp_diff.js is written for Node $want_major's internal HTTPParser"
    exit 77
fi
exec timeout 120 node "$src/tests/vectors/http/llhttp_diff.js" "$src/tests/vectors/http"
