#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_layout_check.sh: scripts/check-layout.sh catches each kind of violation it promises.
# Copies src/ into a temp dir, plants one violation at a time, and asserts that the script
# fails and names the offending file; the clean copy must pass. $1 (the shoal binary) is unused.
# Bounded: every run of the script is under `timeout`; the temp dir is removed on exit.
set -u
src=${SHOAL_SOURCE_DIR:?SHOAL_SOURCE_DIR must point at the source tree}
script=$src/scripts/check-layout.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-layout.XXXXXX") || exit 1
trap 'rm -rf -- "$tmp"' EXIT
failures=0

fresh_copy() {
    rm -rf -- "$tmp/src"
    cp -R -- "$src/src" "$tmp/src"
    cp -- "$src/CMakeLists.txt" "$tmp/CMakeLists.txt"
}

run_check() {
    timeout 60 bash "$script" "$tmp" >"$tmp/out" 2>&1
}

# expect_violation NAME FILE(relative to src/) LINE_TO_ADD
expect_violation() {
    local name=$1 file=$2 line=$3 rc
    fresh_copy
    mkdir -p -- "$(dirname -- "$tmp/src/$file")"
    printf '%s\n' "$line" >>"$tmp/src/$file"
    run_check
    rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "FAIL $name: check-layout exited $rc, want 1"; sed 's/^/    /' "$tmp/out"
        failures=$((failures + 1))
    elif ! grep -q -- "$file" "$tmp/out"; then
        echo "FAIL $name: output does not name $file"; sed 's/^/    /' "$tmp/out"
        failures=$((failures + 1))
    else
        echo "ok   $name"
    fi
}

fresh_copy
if run_check; then
    echo "ok   clean tree passes"
else
    echo "FAIL clean tree: check-layout failed"; sed 's/^/    /' "$tmp/out"
    failures=$((failures + 1))
fi

expect_violation "core may not include http" core/buf.c '#include "http/http.h"'
expect_violation "cli may not include http's private header" cli/cli.c '#include "http/http_int.h"'
expect_violation "banned strcpy" http/parser.c 'static void planted(char *d) { strcpy(d, "x"); }'
expect_violation "raw malloc" cli/cli.c 'static void *planted(void) { return malloc(4); }'
expect_violation "sqlite3.h outside store" http/parser.c '#include <sqlite3.h>'
expect_violation "header including an upward component" http/http.h '#include "cli/cli.h"'
expect_violation "unknown component" extra/thing.c '/* planted */'
expect_violation "a component including a main program header" proxy/lb.c '#include "up.h"'
expect_violation "an arrow CMake does not link" cli/cli.c '#include "store/store.h"'
expect_violation "registry may not include proxy" registry/check.c '#include "proxy/proxy.h"'

# The clean copy still passes after all that (fresh_copy really restores).
fresh_copy
if ! run_check; then
    echo "FAIL clean tree after plants"; failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] && echo "test_layout_check: all passed"
exit $((failures > 0))
