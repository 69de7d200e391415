#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_check.sh: `shoal check -f FILE [--json]` through the real binary ($1): the example
# manifest passes with its summary; invalid manifests exit 1 with file:line:col on stderr,
# including an error only the gateway's own reader finds. Without python3 (the JSON check)
# it reports SKIP (exit 77). Bounded; temp dir removed on exit.
set -u
shoal=${1:?usage: test_check.sh SHOAL_BINARY}
shoal=$(cd "$(dirname "$shoal")" && pwd)/$(basename "$shoal")
src=${SHOAL_SOURCE_DIR:-$(dirname "$0")/../..}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-check.XXXXXX") || exit 1
trap 'rm -rf -- "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL $1"; sed 's/^/    /' "$tmp/out" "$tmp/err"
    failures=$((failures + 1))
}

# expect_ok NAME FILE STDOUT_REGEX [ARGS...]
expect_ok() {
    local name=$1 file=$2 re=$3 rc
    shift 3
    timeout 20 "$shoal" check -f "$file" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then fail "$name: exit $rc, want 0"
    elif ! grep -q -E -- "$re" "$tmp/out"; then fail "$name: stdout does not match $re"
    else echo "ok   $name"; fi
}

# expect_bad NAME YAML STDERR_EXACT
expect_bad() {
    local name=$1 rc
    printf '%s' "$2" >"$tmp/shoal.yaml"
    (cd "$tmp" && timeout 20 "$shoal" check -f shoal.yaml >"$tmp/out" 2>"$tmp/err")
    rc=$?
    if [ "$rc" -ne 1 ]; then fail "$name: exit $rc, want 1"
    elif [ "$(cat "$tmp/err")" != "$3" ]; then fail "$name: stderr is not: $3"
    elif [ -s "$tmp/out" ]; then fail "$name: printed on stdout"
    else echo "ok   $name"; fi
}

expect_ok "example passes" "$src/examples/hello/shoal.yaml" \
    '^.*examples/hello/shoal.yaml: ok \(2 services, 4 instances, gateway on 127\.0\.0\.1:8080\)$'
expect_ok "example as JSON" "$src/examples/hello/shoal.yaml" '"start_order":\["names","greeter"\]' --json
skipped=0
if command -v python3 >/dev/null; then
    timeout 20 "$shoal" check -f "$src/examples/hello/shoal.yaml" --json >"$tmp/out" 2>"$tmp/err"
    if python3 -m json.tool <"$tmp/out" >/dev/null; then echo "ok   JSON parses"
    else fail "JSON does not parse"; fi
else
    echo "SKIP JSON parses: python3 not found"; skipped=$((skipped + 1))
fi

expect_bad "replicas out of range" $'services:\n  api:\n    command: ./api\n    replicas: 5000\n' \
    'shoal.yaml:4:15: services.api.replicas: expected a number from 0 to 1000'
expect_bad "dependency cycle" $'services:\n  a: {command: x, depends_on: [b]}\n  b: {command: x, depends_on: [a]}\n' \
    'shoal.yaml:3:32: services.b.depends_on: a dependency cycle: a -> b -> a'
expect_bad "route to an unknown service" \
    $'services:\n  api: {command: x, port: auto}\ngateway:\n  routes:\n    - {service: web}\n' \
    "shoal.yaml:5:17: gateway.routes[0].service: no service named 'web'"
expect_bad "resilience checked by the gateway's reader" \
    $'services:\n  api:\n    command: x\n    port: auto\n    resilience: {retry: {max: 50}}\n' \
    'shoal.yaml:5:31: services.api.resilience.retry.max: 50 is out of range (0..10)'
expect_bad "a resilience key misspelt, named as written" \
    $'services:\n  api:\n    command: x\n    port: auto\n    resilience: {outlier: {panic: 10}}\n' \
    "shoal.yaml:5:28: services.api.resilience.outlier: unknown key 'panic' (allowed: consecutive_errors, base_ejection, max_ejection, max_ejection_percent, panic_threshold)"
expect_bad "a route's policy named as written" \
    $'services:\n  api: {command: x, port: auto}\ngateway:\n  routes:\n    - {service: api, retry: {on: [sometimes]}}\n' \
    "shoal.yaml:5:35: gateway.routes[0].retry.on[0]: 'sometimes' is not a retry condition (connect, reset, timeout, 5xx, or a status from 400 to 599)"

# a YAML syntax error: exit 1, a position in the file
printf 'services:\n  api: [\n' >"$tmp/shoal.yaml"
(cd "$tmp" && timeout 20 "$shoal" check -f shoal.yaml >"$tmp/out" 2>"$tmp/err")
rc=$?
if [ "$rc" -eq 1 ] && grep -q -E '^shoal\.yaml:[0-9]+:[0-9]+: ' "$tmp/err"; then echo "ok   YAML syntax error"
else fail "YAML syntax error: exit $rc"; fi

# a missing file: exit 1, the path named
timeout 20 "$shoal" check -f "$tmp/nope.yaml" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "nope.yaml" "$tmp/err"; then echo "ok   missing file"
else fail "missing file: exit $rc"; fi
# usage errors exit 2
timeout 20 "$shoal" check >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 2 ]; then echo "ok   usage error"; else fail "usage error: exit $rc, want 2"; fi

# A check that could not run makes the test SKIP (77, ctest's SKIP_RETURN_CODE), not pass.
if [ "$failures" -ne 0 ]; then exit 1; fi
if [ "$skipped" -ne 0 ]; then echo "test_check: SKIP ($skipped check(s) could not run)"; exit 77; fi
echo "test_check: all passed"
