#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_promtool.sh: `promtool check metrics` accepts our Prometheus text exposition with no
# complaint. The shoal binary ($1) does not serve metrics yet, so tests/tools/metrics_dump
# (SHOAL_METRICS_DUMP) renders a proxy-shaped registry with odd label values instead.
# promtool (SHOAL_PROMTOOL, from the Debian package `prometheus`) is required: a missing
# promtool fails the test, it is never skipped. A planted bad exposition must make promtool
# complain, so a check that silently passes everything cannot hide behind this test.
# Bounded: every command runs under `timeout`; the temp dir is removed on exit.
set -u
promtool=${SHOAL_PROMTOOL:-}
dump=${SHOAL_METRICS_DUMP:-}
if [ -z "$promtool" ] || [ ! -x "$promtool" ]; then
    echo "test_promtool: FAIL: promtool not found (SHOAL_PROMTOOL='$promtool');" \
        "install the Debian package 'prometheus' (scripts/install-deps.sh) and re-run cmake" >&2
    exit 1
fi
if [ -z "$dump" ] || [ ! -x "$dump" ]; then
    echo "test_promtool: FAIL: metrics_dump not built (SHOAL_METRICS_DUMP='$dump')" >&2
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-promtool.XXXXXX") || exit 1
trap 'rm -rf -- "$tmp"' EXIT
failures=0

fail() {
    echo "test_promtool: FAIL: $*" >&2
    failures=$((failures + 1))
}

# check FILE: promtool's exit status; its complaints go to $tmp/lint
check() {
    timeout 60 "$promtool" check metrics <"$1" >"$tmp/lint" 2>&1
}

if ! timeout 30 "$dump" >"$tmp/metrics.txt" 2>"$tmp/dump.err"; then
    cat "$tmp/dump.err" >&2
    fail "metrics_dump exited with an error"
fi
for family in shoal_gateway_requests_total shoal_upstream_request_duration_seconds \
    shoal_response_size_bytes shoal_active_connections shoal_upstream_retries_total \
    shoal_circuit_breaker_state shoal_build_info; do
    grep -q "^# TYPE $family " "$tmp/metrics.txt" || fail "family $family missing from the dump"
done
grep -q '_bucket{route="shop \\"checkout\\"",cluster="payments-v2",le="+Inf"}' \
    "$tmp/metrics.txt" || fail "escaped label value or +Inf bucket missing"
grep -q '10.9.9.9' "$tmp/metrics.txt" && fail "a retired series was rendered"

check "$tmp/metrics.txt"
rc=$?
if [ $rc -ne 0 ] || [ -s "$tmp/lint" ]; then
    sed 's/^/  promtool: /' "$tmp/lint" >&2
    fail "promtool check metrics complained (exit $rc) about metrics_dump's output"
fi

# The check is live: a counter without _total and a missing HELP must be reported.
printf '# TYPE bad_requests counter\nbad_requests 1\n' >"$tmp/bad.txt"
check "$tmp/bad.txt"
rc=$?
if [ $rc -eq 0 ] && [ ! -s "$tmp/lint" ]; then
    fail "promtool accepted a planted bad exposition; the check proves nothing"
fi

if [ $failures -ne 0 ]; then
    echo "test_promtool: $failures failure(s); the dump was:" >&2
    head -n 40 "$tmp/metrics.txt" >&2
    exit 1
fi
echo "test_promtool: ok ($(grep -vc '^#' "$tmp/metrics.txt") samples checked)"
