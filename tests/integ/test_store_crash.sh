#!/usr/bin/env bash
# Durability: every acknowledged store write survives kill -9. store_writer puts keys one by one
# and prints each key after its put returned; we kill it with SIGKILL after a random short delay,
# then check (store_writer verify) that every printed key is stored with its value. Several
# rounds on the same data dir, so recovery from a killed WAL is also exercised.
# $1 (the shoal binary) is unused: the binary has no store command yet. Needs SHOAL_STORE_WRITER.
set -euo pipefail
writer=${SHOAL_STORE_WRITER:?SHOAL_STORE_WRITER must name the store_writer tool}
work=$(mktemp -d /tmp/shoal-store-crash-XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

rounds=5
start=0
for round in $(seq 1 $rounds); do
    : >"$work/acked.$round"
    "$writer" write "$work/data" "$start" 1000000 >"$work/acked.$round" 2>"$work/err.$round" &
    pid=$!
    # Waits (20 s at most) for the first acknowledged write, then lets 0..999 ms more pass on
    # purpose: the kill lands at a random point of the run, never before anything was acked.
    for _ in $(seq 1 400); do
        [ -s "$work/acked.$round" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    acked=$(grep -c '' "$work/acked.$round" || true)
    if [ "$acked" -eq 0 ]; then
        echo "round $round: no write was acknowledged before the kill" >&2
        cat "$work/err.$round" >&2
        exit 1
    fi
    # Every round's acknowledged keys, this one and the earlier ones, must still be there.
    cat "$work"/acked.* >"$work/all"
    "$writer" verify "$work/data" "$work/all"
    echo "round $round: killed after $acked acknowledged writes; all present"
    start=$((start + 1000000))
done
