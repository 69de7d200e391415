#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_promtool.sh: `promtool check metrics` accepts what the real binary ($1) serves: a
# `shoal gateway`'s admin /metrics after traffic (tests/integ/promtool_test.py). promtool
# comes from the Debian package `prometheus` (scripts/install-deps.sh installs it); CMake finds
# it as SHOAL_PROMTOOL. Without it the test reports SKIP (exit 77, ctest's SKIP_RETURN_CODE),
# never a pass. Bounded: the driver runs under `timeout`.
set -u
shoal=${1:?usage: test_promtool.sh SHOAL_BINARY}
promtool=${SHOAL_PROMTOOL:-}
case "$promtool" in *-NOTFOUND) promtool="" ;; esac
[ -n "$promtool" ] || promtool=$(command -v promtool 2>/dev/null || true)
if [ -z "$promtool" ] || [ ! -x "$promtool" ]; then
    echo "SKIP: promtool not found; install the Debian package 'prometheus'" \
        "(scripts/install-deps.sh) and re-run cmake"
    exit 77
fi
exec timeout 120 python3 "$(dirname "$0")/promtool_test.py" "$shoal" "$promtool"
