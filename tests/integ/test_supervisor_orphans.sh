#!/usr/bin/env bash
# Children never outlive the supervisor, also after kill -9: procs_driver starts 3 `sleep 30`
# instances through the trampoline `$1 __child --` and prints their pids; we kill -9 the driver
# and require every child to be gone within 2 s (a zombie left to a container's init counts as
# gone). Bounded; on exit it kills by pid only what it started. Needs SHOAL_PROCS_DRIVER.
set -euo pipefail
shoal=${1:?usage: test_supervisor_orphans.sh SHOAL_BINARY}
driver=${SHOAL_PROCS_DRIVER:?SHOAL_PROCS_DRIVER must name the procs_driver tool}
work=$(mktemp -d /tmp/shoal-orphans-XXXXXX)
dpid=""
pids=()
cleanup() {
    if [ -n "$dpid" ]; then kill -9 "$dpid" 2>/dev/null || true; fi
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Alive: /proc/<pid> exists and the process is not a zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] && [ "${stat%% *}" != X ]
}

"$driver" "$shoal" 3 sleep 30 >"$work/pids" 2>"$work/err" &
dpid=$!
for _ in $(seq 1 100); do
    [ "$(grep -c '' "$work/pids" || true)" -ge 3 ] && break
    sleep 0.05
done
mapfile -t pids <"$work/pids"
if [ "${#pids[@]}" -ne 3 ]; then
    echo "driver did not print 3 pids" >&2
    cat "$work/err" >&2
    exit 1
fi
for p in "${pids[@]}"; do
    if ! alive "$p"; then
        echo "child $p is not running before the kill" >&2
        exit 1
    fi
    # The trampoline execs, so the child is `sleep 30` in its own group, its parent the driver.
    comm=$(cat "/proc/$p/comm")
    ppid=$(awk '{print $4}' "/proc/$p/stat")
    pgid=$(awk '{print $5}' "/proc/$p/stat")
    if [ "$comm" != sleep ] || [ "$ppid" != "$dpid" ] || [ "$pgid" != "$p" ]; then
        echo "child $p: comm=$comm ppid=$ppid (driver $dpid) pgid=$pgid" >&2
        exit 1
    fi
done
echo "driver $dpid started children ${pids[*]}"

kill -9 "$dpid"
wait "$dpid" 2>/dev/null || true
dpid=""
deadline=$((SECONDS + 3))
for _ in $(seq 1 40); do
    left=()
    for p in "${pids[@]}"; do
        if alive "$p"; then left+=("$p"); fi
    done
    [ "${#left[@]}" -eq 0 ] && break
    [ $SECONDS -ge $deadline ] && break
    sleep 0.05
done
if [ "${#left[@]}" -ne 0 ]; then
    echo "children still alive 2 s after kill -9 of their supervisor: ${left[*]}" >&2
    exit 1
fi
echo "all children died with their supervisor"
