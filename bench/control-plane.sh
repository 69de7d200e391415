#!/usr/bin/env bash
# Control-plane benchmark: shoal's registry (INSTANCES instances, WATCHERS blocking watchers:
# change-to-watcher latency, RSS) and its durable KV (writes/s, watch latency), with a single-node
# etcd doing the same puts and watches in the same run. Writes bench/results/control-plane.md and
# bench/results/control-plane.json. The driver is bench/control_plane.py (Python 3, stdlib only).
#
# Usage: bench/control-plane.sh
# Env:   INSTANCES (10000) SERVICES (100) WATCHERS (1000) ROUNDS (10) WRITES (2000)
#        WATCH_SAMPLES (200) KV_CONC (8) PORT_BASE (17710: uses PORT_BASE..PORT_BASE+4 on 127.0.0.1)
#        ETCD (etcd binary; default: etcd on PATH; ETCD=none skips it) BUILD (build)
#        TIME_LIMIT (seconds, 600: the driver is stopped past it) RESULTS (bench/results)
# Needs: build/shoal (cmake --build build), python3, etcd (scripts/install-deps.sh --bench).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
results=${RESULTS:-$root/bench/results}
shoal=$build/shoal
[ -x "$shoal" ] || { echo "control-plane.sh: $shoal is not built (cmake -S . -B build && cmake --build build)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "control-plane.sh: python3 is needed" >&2; exit 1; }
etcd=${ETCD:-$(command -v etcd || true)}
if [ "$etcd" = none ]; then
    etcd=""
elif [ -z "$etcd" ]; then
    echo "control-plane.sh: etcd not found (scripts/install-deps.sh --bench installs etcd-server; ETCD=none skips it)" >&2
    exit 1
fi

mkdir -p "$results"
work=$(mktemp -d "${TMPDIR:-/tmp}/shoal-cpbench.XXXXXX")
driver=""
cleanup() {
    # stop only what this run started, by PID: the driver, then any server it left behind
    if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
        kill -TERM "$driver" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$driver" 2>/dev/null || true
    fi
    if [ -f "$work/pids" ]; then
        while read -r pid; do
            kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
        done <"$work/pids"
        sleep 0.5
        while read -r pid; do
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        done <"$work/pids"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout --signal=TERM --kill-after=10 "${TIME_LIMIT:-600}" python3 "$root/bench/control_plane.py" \
    --shoal "$shoal" --etcd "$etcd" --workdir "$work" --root "$root" \
    --out "$work/control-plane.json" --md "$work/control-plane.md" \
    --port-base "${PORT_BASE:-17710}" \
    --instances "${INSTANCES:-10000}" --services "${SERVICES:-100}" \
    --watchers "${WATCHERS:-1000}" --rounds "${ROUNDS:-10}" \
    --writes "${WRITES:-2000}" --watch-samples "${WATCH_SAMPLES:-200}" --kv-conc "${KV_CONC:-8}" \
    --fanout-bin "$build/bench/bench_fanout" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=""
[ "$rc" -ne 124 ] || echo "control-plane.sh: stopped after TIME_LIMIT=${TIME_LIMIT:-600}s" >&2
[ "$rc" -eq 0 ] || { echo "control-plane.sh: the driver failed ($rc); logs:" >&2; tail -n 20 "$work"/*.log >&2 || true; exit "$rc"; }
mv "$work/control-plane.json" "$results/control-plane.json"
mv "$work/control-plane.md" "$results/control-plane.md"
cat "$results/control-plane.md"
