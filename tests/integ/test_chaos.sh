#!/usr/bin/env bash
# Chaos (docs/reliability.md): closed-loop GETs through the gateway while upstreams are killed
# with SIGKILL every 2-3 s; at least 99.9% must succeed. Two short runs with modest load for
# CI (16 connections, 1 ms pause between a connection's GETs): `shoal gateway` in front of three
# `shoal echo` restarted on their ports, then `shoal up` of examples/hello, whose instances
# must all be back at the end. Both always run; it fails if either does. `make chaos` runs
# longer ones and a soak. SKIP (77) without python3. Usage: test_chaos.sh SHOAL_BINARY
set -u
shoal=${1:?usage: test_chaos.sh SHOAL_BINARY}
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 not found; the chaos tests are written in Python"
    exit 77
fi
here=$(dirname "$0")
seconds=${SHOAL_CHAOS_SECONDS:-30}
rc=0
for scenario in gateway up; do
    timeout $((seconds + 200)) python3 "$here/chaos_test.py" "$shoal" "$scenario" \
        --duration "$seconds" --connections 16 --think-ms 1 --time-limit $((seconds + 180)) \
        || rc=1
done
exit $rc
